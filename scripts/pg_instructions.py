"""Instructions per task of a drain on PostgreSQL, counted by valgrind: the daemon's and the
server's. A count, not a time: the same code on the same data gives the same figure within
about 1 %, whatever else the machine does, where a drain's rate or CPU varies by ±20 %. So a
change of a few per cent to the work per task can be shown (and was: docs/PERFORMANCE.md).

    .venv/bin/python scripts/pg_instructions.py [--tasks 1000,5000] [--slots 64] [--side both]

The server runs under callgrind (each backend counted on its own), and so does the daemon
(`ygg loop --until-idle`, from the tree it imports: PYTHONPATH picks another). Each size
drains a fresh database of one cluster; the difference between two sizes, per task, leaves
out what does not grow with the tasks (start-up, imports, connecting). Under valgrind the
daemon runs about 50 times slower than the server's answers, so its waves are full: the
figure is the work of a full wave's task, not the wave's waiting. Needs valgrind (Debian's).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support.pg

import _pg_bench_ygg as ygg_side  # noqa: E402
import psycopg  # noqa: E402

from tests.support.pg import PgCluster  # noqa: E402

RUN_TIMEOUT_S = 1800


def callgrind(out_pattern: str) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_pattern}",
        "--dump-instr=no",
    ]


def instructions(paths: list[str]) -> int:
    """The instructions counted in callgrind output files (the total line of each)."""
    total = 0
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total += int(line.split()[1])
                break
    return total


def start_server_under_callgrind(pg: PgCluster, out_dir: Path) -> subprocess.Popen[bytes]:
    """The cluster's postmaster again, under callgrind, as the data dir's owner (the server
    refuses root); every backend it forks is counted in a file of its own."""
    pg.halt()
    command = [
        *callgrind(f"{out_dir}/server.%p"),
        str(pg.bin_dir / "postgres"),
        "-D",
        str(pg.data_dir),
    ]
    if os.geteuid() == 0:
        command = ["runuser", "-u", pg.data_dir.owner(), "--", *command]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            psycopg.connect(pg.url, connect_timeout=5).close()
            return server
        except psycopg.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("the server did not start under valgrind") from None
            time.sleep(0.5)


def drain(
    pg: PgCluster, name: str, tasks: int, slots: int, out_dir: Path, daemon_too: bool
) -> tuple[int, int]:
    """One drain of `tasks` on a fresh database: the daemon's and the server's instructions."""
    url = pg.create_database(name)
    directory = Path(tempfile.mkdtemp(prefix="ygg-instr-"))
    config = ygg_side.write_config(directory, url, slots, poll_s=60.0)
    ygg_side.fill(url, [ygg_side.DRAIN_KIND], tasks, config=config)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ygg.tasks")  # as scripts/pg_bench.py's drains start
    before = set(glob.glob(f"{out_dir}/server.*"))
    prefix = callgrind(str(directory / "daemon.out")) if daemon_too else []
    command = [*prefix, *ygg_side._ygg(config, "loop", "--until-idle")]
    done = subprocess.run(
        command,
        cwd=directory,
        env=ygg_side._env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    if done.returncode:
        raise RuntimeError(f"ygg loop exited {done.returncode}: {done.stderr.strip()[-300:]}")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ygg.tasks WHERE status = 'done'").fetchone()
    if row is None or row[0] != tasks:
        raise RuntimeError(f"{row} of {tasks} tasks done")
    time.sleep(2)  # the backends write their counts as they exit
    server = instructions(sorted(set(glob.glob(f"{out_dir}/server.*")) - before))
    daemon = instructions([str(directory / "daemon.out")]) if daemon_too else 0
    shutil.rmtree(directory, ignore_errors=True)
    return daemon, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="1000,5000", help="two queue sizes (default 1000,5000)")
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--side", choices=("both", "server"), default="both")
    args = parser.parse_args()
    small, large = sorted(int(n) for n in args.tasks.split(","))
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    out_dir = Path(tempfile.mkdtemp(prefix="ygg-instr-server-"))
    out_dir.chmod(0o777)  # the server's user writes its counts here
    with PgCluster(synchronous_commit=False, settings={"autovacuum": "off"}) as pg:
        server = start_server_under_callgrind(pg, out_dir)
        try:
            counts = [
                drain(pg, f"drain{n}", n, args.slots, out_dir, args.side == "both")
                for n in (small, large)
            ]
        finally:
            server.terminate()
            server.wait(120)
    shutil.rmtree(out_dir, ignore_errors=True)
    (daemon_s, server_s), (daemon_l, server_l) = counts
    per_task = large - small
    print(f"instructions per task, {args.slots} slots ({small:,} and {large:,} tasks):")
    if args.side == "both":
        print(f"  daemon {round((daemon_l - daemon_s) / per_task):>9,}")
    print(f"  server {round((server_l - server_s) / per_task):>9,}")


if __name__ == "__main__":
    main()
