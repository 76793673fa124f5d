"""What one wave of the daemon's store thread costs on PostgreSQL, statement by statement.

    .venv/bin/python scripts/pg_wave_cost.py [--slots 64] [--tasks 20000]
        [--statements top|all|none]

A wave is what a daemon's store thread runs in one transaction when a pool's attempts all end
at once: their outcomes recorded, then a claim for the slots they freed. This runs waves
straight through the store (no daemon, no event loop) on a throwaway cluster with
pg_stat_statements, until the queue is empty, and prints tasks/s, this process's CPU and the
server backend's CPU per task, and each statement's calls, plans, planning and execution time
per wave. It shows what the server does; a daemon adds its event loop's turn to every wave.
`--statements all` lists the statements inside the claim's and the outcomes' functions too;
`--statements none` leaves pg_stat_statements out, and its own cost out of the CPU figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support.pg

import _pg_bench_ygg as ygg_side  # noqa: E402
import psycopg  # noqa: E402
from _cpu import cpu_of_s  # noqa: E402  (scripts/pg_compare, put on the path by _pg_bench_ygg)

from tests.support.pg import PgCluster  # noqa: E402
from ygg.store import Outcome, open_store  # noqa: E402
from ygg.store.base import Store  # noqa: E402
from ygg.store.completion import Completion  # noqa: E402
from ygg.store.model import US, Claim, now_us  # noqa: E402

STATEMENTS = """
SELECT calls, plans, total_plan_time, total_exec_time,
    left(regexp_replace(query, '\\s+', ' ', 'g'), 60)
FROM pg_stat_statements WHERE calls >= %s ORDER BY total_plan_time + total_exec_time DESC
"""


def run_waves(store: Store, slots: int, owner: int) -> tuple[int, int]:
    """Waves until the queue is empty; how many waves and tasks."""
    held: list[Claim] = []
    waves = done = 0
    while True:
        with store.batch(savepoints=False):
            if held:
                outcome = Outcome("sim: t", 1, 1)
                items = [Completion(c.task_id, c.token, outcome, now_us()) for c in held]
                store.complete_many(items)
                done += len(held)
            held = store.claim(
                "sim", ["sim"], slots, slots=slots, owner=owner, lease_us=30 * US, now_us=now_us()
            )
        waves += 1
        if not held:
            return waves, done


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument(
        "--statements", choices=["top", "all", "none"], default="top",
        help="pg_stat_statements tracks the store's statements (top), also those inside the "
        "functions (all), or is not loaded (none: the CPU figures without its own cost)",
    )  # fmt: skip
    args = parser.parse_args()
    watched = args.statements != "none"
    settings = {
        "shared_preload_libraries": "'pg_stat_statements'",
        "pg_stat_statements.track_planning": "on",
        "pg_stat_statements.track": args.statements,
    }
    with PgCluster(settings=settings if watched else {}) as cluster:
        url = cluster.create_database("waves")
        ygg_side.fill(url, [ygg_side.DRAIN_KIND], args.tasks)
        with psycopg.connect(url, autocommit=True) as admin:
            if watched:
                admin.execute("CREATE EXTENSION pg_stat_statements")
            store = open_store(url)  # the database's clock, as a daemon's
            owner = store.register_daemon("bench", os.getpid(), now_us(), "", "async", now_us())
            with store.read() as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            if watched:
                admin.execute("SELECT pg_stat_statements_reset()")
            backend0, cpu0, wall0 = cpu_of_s(row[0]), time.process_time(), time.perf_counter()
            waves, done = run_waves(store, args.slots, owner)
            wall = time.perf_counter() - wall0
            cpu, backend = time.process_time() - cpu0, cpu_of_s(row[0]) - backend0
            statements = admin.execute(STATEMENTS, (waves // 2,)).fetchall() if watched else []
            store.close()
    print(
        f"{done:,} tasks in {waves:,} waves of up to {args.slots}: {done / wall:,.0f} tasks/s, "
        f"{wall / waves * 1e3:.2f} ms a wave; CPU per task: this process "
        f"{cpu / done * 1e6:.0f} µs, the server's backend {backend / done * 1e6:.0f} µs"
    )
    if watched:
        print("per wave: calls, plans, planning µs, execution µs, statement")
    for calls, plans, plan_ms, exec_ms, text in statements:
        print(f"  {calls / waves:5.2f} {plans / waves:5.2f} {plan_ms / waves * 1e3:7.1f} "
              f"{exec_ms / waves * 1e3:8.1f}  {text}")  # fmt: skip


if __name__ == "__main__":
    main()
