"""Instructions per task of a drain on PostgreSQL, counted by valgrind: the daemon's and the
server's. A count, not a time: the same code on the same data gives the same figure within
about 1 %, whatever else the machine does, where a drain's rate or CPU varies by ±20 %. So a
change of a few per cent to the work per task can be shown (and was: docs/PERFORMANCE.md).

    .venv/bin/python scripts/pg_instructions.py [--tasks 1000,5000] [--slots 64] [--side both]
    .venv/bin/python scripts/pg_instructions.py --system pgqueuer   # the same count, for pgqueuer

The server runs under callgrind (each backend counted on its own), and so does the daemon
(`ygg loop --until-idle`, from the tree it imports: PYTHONPATH picks another). Each size
drains a fresh database of one cluster; the difference between two sizes, per task, leaves
out what does not grow with the tasks (start-up, imports, connecting). Under valgrind the
daemon runs about 50 times slower than the server's answers, so its waves are full: the
figure is the work of a full wave's task, not the wave's waiting. Needs valgrind (Debian's).

`--system pgqueuer` counts one pgqueuer worker (no limit, its defaults, from the comparison
venv of scripts/pg_compare) draining the same number of no-op jobs. Between two systems the
counts compare work, not time: an instruction of one may cost more than one of the other
(docs/PERFORMANCE.md, "Run 11"); the drain's target is judged on scripts/pg_bench.py's rates.
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
sys.path.insert(0, str(HERE / "pg_compare"))  # run.py: the comparison venv, for pgqueuer

import _pg_bench_ygg as ygg_side  # noqa: E402
import psycopg  # noqa: E402
from run import default_venv, ensure_venv  # noqa: E402

from tests.support.pg import PgCluster  # noqa: E402

RUN_TIMEOUT_S = 1800
SETTLE_S = 2.0  # a backend under valgrind writes its count as it exits, after its client


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


def counted(
    command: list[str],
    cwd: Path,
    env: dict[str, str] | None,
    out_dir: Path,
    client_out: Path | None,
) -> tuple[int, int]:
    """Runs a drain's `command` (under callgrind if `client_out`, where it writes its count):
    its instructions, and those of the server's backends that began meanwhile."""
    time.sleep(SETTLE_S)  # the backends that filled the queue have written their counts
    before = set(glob.glob(f"{out_dir}/server.*"))
    prefix = callgrind(str(client_out)) if client_out else []
    done = subprocess.run(
        [*prefix, *command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{command[-1]} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    time.sleep(SETTLE_S)  # the drain's backends write theirs as they exit
    server = instructions(sorted(set(glob.glob(f"{out_dir}/server.*")) - before))
    return (instructions([str(client_out)]) if client_out else 0), server


def drain_ygg(
    pg: PgCluster, name: str, tasks: int, slots: int, out_dir: Path, client: bool
) -> tuple[int, int]:
    """One daemon (`ygg loop --until-idle`) drains `tasks` on a fresh database."""
    url = pg.create_database(name)
    directory = Path(tempfile.mkdtemp(prefix="ygg-instr-"))
    config = ygg_side.write_config(directory, url, slots, poll_s=60.0)
    ygg_side.fill(url, [ygg_side.DRAIN_KIND], tasks, config=config)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ygg.tasks")  # as scripts/pg_bench.py's drains start
    command = ygg_side._ygg(config, "loop", "--until-idle")
    out = directory / "daemon.out" if client else None
    counts = counted(command, directory, ygg_side._env(), out_dir, out)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ygg.tasks WHERE status = 'done'").fetchone()
    if row is None or row[0] != tasks:
        raise RuntimeError(f"{row} of {tasks} tasks done")
    shutil.rmtree(directory, ignore_errors=True)
    return counts


def drain_pgqueuer(
    pg: PgCluster, name: str, tasks: int, slots: int, out_dir: Path, client: bool
) -> tuple[int, int]:
    """One pgqueuer QueueManager drains `tasks` no-op jobs on a fresh database, without a limit
    (`slots` does not apply); pg_compare/pgqueuer_steps.py fills the queue and checks it empty."""
    del slots
    python = str(ensure_venv(default_venv()))
    url = pg.create_database(name)
    steps = str(HERE / "pg_compare" / "pgqueuer_steps.py")
    subprocess.run(
        [python, steps, "enqueue", "--url", url, "--jobs", str(tasks)], check=True,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    directory = Path(tempfile.mkdtemp(prefix="ygg-instr-"))
    out = directory / "worker.out" if client else None
    counts = counted([python, steps, "drain", "--url", url], directory, None, out_dir, out)
    shutil.rmtree(directory, ignore_errors=True)
    return counts


SYSTEMS = {"ygg": (drain_ygg, "daemon"), "pgqueuer": (drain_pgqueuer, "worker")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="1000,5000", help="two queue sizes (default 1000,5000)")
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--side", choices=("both", "server"), default="both")
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="ygg")
    args = parser.parse_args()
    small, large = sorted(int(n) for n in args.tasks.split(","))
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    drain, client = SYSTEMS[args.system]
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
    (client_s, server_s), (client_l, server_l) = counts
    per_task = large - small
    setting = f"{args.slots} slots" if args.system == "ygg" else "no limit"
    print(f"instructions per task, {args.system}, {setting} ({small:,} and {large:,} tasks):")
    if args.side == "both":
        print(f"  {client} {round((client_l - client_s) / per_task):>9,}")
    print(f"  server {round((server_l - server_s) / per_task):>9,}")


if __name__ == "__main__":
    main()
