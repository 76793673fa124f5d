"""Drain rate: N zero-second sim tasks, one `ygg loop --until-idle`, pools totalling 64 slots.

    python scripts/drain.py [--tasks 20000] [--synchronous normal|full]

Prints tasks/s between the first claim and the last completion, read back from the queue.
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from _bench_common import fill, workdir, write_config, ygg

POOLS = {f"pool-{i}": (16, [f"kind-{i}"]) for i in range(4)}  # 4 x 16 = 64 slots


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    args = parser.parse_args()
    directory = workdir()
    write_config(directory, POOLS, args.synchronous)
    fill(directory / "queue.db", [k for _, kinds in POOLS.values() for k in kinds], args.tasks)
    started = time.monotonic()
    ygg("loop", "--until-idle", cwd=directory)
    wall_s = time.monotonic() - started
    conn = sqlite3.connect(directory / "queue.db")
    done, first, last = conn.execute(
        "SELECT count(*), min(started_us), max(finished_us) FROM tasks WHERE status = 'done'"
    ).fetchone()
    span_s = (last - first) / 1e6
    print(
        f"drain synchronous={args.synchronous}: {done}/{args.tasks} done, "
        f"{done / span_s:,.0f} tasks/s (first claim to last completion {span_s:.2f} s; "
        f"process wall time {wall_s:.2f} s)"
    )


if __name__ == "__main__":
    main()
