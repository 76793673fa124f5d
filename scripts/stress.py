"""Several daemons on one SQLite queue: double claims, lost tasks, slots.

    python scripts/stress.py [--daemons 4] [--tasks 20000]

Runs N `ygg loop --until-idle` processes on one file with the original deployment's pools
(surtr 2 slots, fenrir 3, skadi 2, all sim with 0 s tasks). Checks, independently of ygg's
own bookkeeping:
- double claims: every daemon's `task_started` log events, counted per task id;
- lost tasks: tasks not `done` at the end;
- slots: a sampler process reads the running count per pool from committed snapshots as fast
  as it can while the daemons run; the maximum seen must not exceed the pool's slots.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sqlite3
import subprocess
import sys
import time

from _bench_common import fill, workdir, write_config

POOLS = {
    "surtr-reasoning": (2, ["reasoning", "general"]),
    "fenrir-chat": (3, ["text-processing", "summarize", "text-extraction"]),
    "skadi-code": (2, ["code-generation", "code-refactor"]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--daemons", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    directory = workdir()
    write_config(directory, POOLS, log_level="debug")  # task_started counts claims
    db = directory / "queue.db"
    fill(db, [k for _, kinds in POOLS.values() for k in kinds], args.tasks, priorities=5)
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    logs = [open(directory / f"daemon-{i}.log", "w") for i in range(args.daemons)]  # noqa: SIM115
    started = time.monotonic()
    daemons = [
        subprocess.Popen(
            [sys.executable, "-m", "ygg", "loop", "--until-idle"],
            cwd=directory,
            env=env,
            stderr=log,
        )
        for log in logs
    ]
    peak = sample_running(db, daemons)
    for daemon in daemons:
        daemon.wait(600)
    wall_s = time.monotonic() - started
    for log in logs:
        log.close()
    starts: collections.Counter[int] = collections.Counter()
    for i in range(args.daemons):
        for line in (directory / f"daemon-{i}.log").read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "task_started":
                starts[event["task_id"]] += 1
    conn = sqlite3.connect(db)
    done = conn.execute("SELECT count(*) FROM tasks WHERE status = 'done'").fetchone()[0]
    reclaimed = conn.execute("SELECT count(*) FROM tasks WHERE attempts != 1").fetchone()[0]
    per_daemon = [
        sum(
            1
            for line in (directory / f"daemon-{i}.log").read_text().splitlines()
            if '"task_done"' in line
        )
        for i in range(args.daemons)
    ]
    print(
        f"{args.daemons} daemons x {args.tasks} tasks in {wall_s:.1f} s "
        f"(exit codes {[d.returncode for d in daemons]}; done per daemon {per_daemon})"
    )
    print(
        f"double claims: {sum(1 for n in starts.values() if n > 1)} "
        f"(tasks started more than once; tasks with attempts != 1: {reclaimed})"
    )
    print(
        f"lost tasks: {args.tasks - done} (not done at the end); "
        f"never started: {args.tasks - len(starts)}"
    )
    for name, (slots, _) in POOLS.items():
        print(f"max running {name}: {peak.get(name, 0)} of {slots} slots")


def sample_running(db: object, daemons: list[subprocess.Popen[bytes]]) -> dict[str, int]:
    conn = sqlite3.connect(str(db))
    peak: dict[str, int] = {}
    while any(d.poll() is None for d in daemons):
        for pool, running in conn.execute(
            "SELECT pool, count(*) FROM tasks WHERE status = 'running' GROUP BY pool"
        ):
            peak[pool] = max(peak.get(pool, 0), running)
    return peak


if __name__ == "__main__":
    main()
