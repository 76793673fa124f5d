"""Drain rate: N zero-second sim tasks, one `ygg loop --until-idle`, pools totalling 64 slots.

    python scripts/drain.py [--tasks 20000] [--synchronous normal|full] [--compare-index N]

Prints tasks/s between the first claim and the last completion, read back from the queue.
`--compare-index N` runs N rounds, each draining once with the dashboard's index on
finished_us (SQLite migration 4) dropped after the fill and once with it, and prints the
median ratio: what keeping that index costs the drain, both sides measured in one run.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from statistics import median

from _bench_common import fill, workdir, write_config, ygg

POOLS = {f"pool-{i}": (16, [f"kind-{i}"]) for i in range(4)}  # 4 x 16 = 64 slots


def drain(tasks: int, synchronous: str, *, finished_index: bool = True) -> float:
    directory = workdir()
    write_config(directory, POOLS, synchronous)
    fill(directory / "queue.db", [k for _, kinds in POOLS.values() for k in kinds], tasks)
    if not finished_index:
        with sqlite3.connect(directory / "queue.db") as conn:
            conn.execute("DROP INDEX tasks_finished")
    started = time.monotonic()
    ygg("loop", "--until-idle", cwd=directory)
    wall_s = time.monotonic() - started
    conn = sqlite3.connect(directory / "queue.db")
    done, first, last = conn.execute(
        "SELECT count(*), min(started_us), max(finished_us) FROM tasks WHERE status = 'done'"
    ).fetchone()
    span_s = (last - first) / 1e6
    print(
        f"drain synchronous={synchronous}{'' if finished_index else ' (no finished_us index)'}: "
        f"{done}/{tasks} done, {done / span_s:,.0f} tasks/s (first claim to last completion "
        f"{span_s:.2f} s; process wall time {wall_s:.2f} s)"
    )
    return float(done / span_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    parser.add_argument("--compare-index", type=int, default=0, metavar="ROUNDS")
    args = parser.parse_args()
    if not args.compare_index:
        drain(args.tasks, args.synchronous)
        return
    ratios = []
    for _ in range(args.compare_index):
        without = drain(args.tasks, args.synchronous, finished_index=False)
        ratios.append(drain(args.tasks, args.synchronous) / without)
    print(
        f"with the finished_us index / without, median of {len(ratios)} rounds: "
        f"{median(ratios):.1%}"
    )


if __name__ == "__main__":
    main()
