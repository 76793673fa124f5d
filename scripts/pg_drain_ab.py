"""Two versions of ygg draining the same queue on PostgreSQL, rounds alternating (ABBA).

    .venv/bin/python scripts/pg_drain_ab.py BEFORE_TREE [AFTER_TREE] [--slots 10,64]
        [--rounds 6] [--tasks 20000] [--daemons 1] [--delay-ms 0]

A drain alone varies by ±20 % on a shared machine, more than most changes are worth. Each
round drains once with the daemon importing BEFORE_TREE and once with AFTER_TREE (default: this
tree), in alternating order, each on a fresh database of one throwaway cluster; the median of
the rounds' ratios is what to read; each tree's line gives the CPU per task as well (the
daemons' and the server's, medians). Make BEFORE_TREE with, say,
`git worktree add /tmp/before HEAD~1`. Each tree makes its own schema (`ygg migrate`), so the
two may differ by a migration. The drain is scripts/pg_bench.py's (`--daemons`
daemons, sim tasks of 0 s, one pool). With `--delay-ms`, the daemons reach the database
through a proxy that holds its traffic that long each way (scripts/_delay_proxy.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support.pg

import _pg_bench_ygg as ygg_side  # noqa: E402
from _delay_proxy import DelayProxy  # noqa: E402

from tests.support.pg import PgCluster  # noqa: E402


def imported_from(tree: Path) -> Path:
    """Where a daemon started as the drains start theirs imports ygg from, given `tree`."""
    done = subprocess.run(
        [sys.executable, "-c", "import ygg; print(ygg.__file__)"], cwd=tempfile.gettempdir(),
        env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return Path(done.stdout.strip()).resolve().parent.parent


def drain_with(
    tree: Path, url: str, daemons: int, tasks: int, slots: int, postmaster_pid: int | None
) -> ygg_side.DrainResult:
    """One drain whose daemons import ygg from `tree` (PYTHONPATH comes before the install)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)
    try:
        return ygg_side.drain_pg(url, daemons, tasks, slots, postmaster_pid)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("before", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("after", type=Path, nargs="?", default=HERE.parent)
    parser.add_argument("--slots", default="10,64")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--daemons", type=int, default=1)
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="through a proxy holding traffic this long"
    )
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        if not (tree / "ygg" / "__init__.py").is_file():
            parser.error(f"{tree} is not a checkout of ygg (no ygg/__init__.py)")
        if imported_from(tree) != tree:
            parser.error(f"a daemon given PYTHONPATH={tree} would import ygg from elsewhere")
    databases = 0
    with PgCluster() as cluster:
        proxy = DelayProxy(cluster.port, args.delay_ms / 1e3) if args.delay_ms else None
        if proxy is not None:
            rtt_ms = proxy.round_trip_ms(cluster.create_database("ab_rtt"))
            print(f"through a proxy holding traffic {args.delay_ms:g} ms each way: "
                  f"SELECT 1 takes {rtt_ms:.2f} ms")  # fmt: skip
        for slots in [int(s) for s in args.slots.split(",")]:
            results: dict[str, list[ygg_side.DrainResult]] = {"before": [], "after": []}
            for round_n in range(args.rounds):
                order = ("before", "after") if round_n % 2 == 0 else ("after", "before")
                for which in order:
                    databases += 1
                    url = cluster.create_database(f"ab_{databases}")
                    url = url if proxy is None else proxy.url(url)
                    drained = drain_with(
                        trees[which], url, args.daemons, args.tasks, slots, cluster.postmaster_pid()
                    )
                    results[which].append(drained)
            rates = {which: [r.rate for r in rs] for which, rs in results.items()}
            ratios = [a / b for a, b in zip(rates["after"], rates["before"], strict=True)]
            head = f"{args.daemons} daemon(s), {slots} slots"
            print(f"{head}, {args.rounds} rounds of {args.tasks:,} tasks:")
            for which in ("before", "after"):
                shown = ", ".join(f"{r:,.0f}" for r in rates[which])
                print(f"  {which:6} median {statistics.median(rates[which]):,.0f} ({shown})")
                cpu = [r.cpu_per_task_us() for r in results[which]]
                daemon_us = statistics.median(c[0] for c in cpu)
                server_us = statistics.median(c[1] for c in cpu)
                print(
                    f"         CPU per task: daemons {daemon_us:.0f} µs, server {server_us:.0f} µs"
                )
            shown = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"  after ÷ before: median {statistics.median(ratios):.2f} ({shown})")


if __name__ == "__main__":
    main()
