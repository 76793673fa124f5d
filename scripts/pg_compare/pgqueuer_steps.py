"""pgqueuer's drain in two processes, for scripts/pg_instructions.py: one fills the queue, the
other (run under valgrind) only drains it, so that a count of its instructions holds nothing
but the drain.

    python pgqueuer_steps.py enqueue --url URL --jobs N   # install, enqueue N no-ops, ANALYZE
    python pgqueuer_steps.py drain --url URL              # one QueueManager until none is left

Runs inside the comparison venv, as bench_pgqueuer.py does. The drain is pgqueuer's own drain
mode with its defaults (batch 10, no concurrency limit), but for the log folding (see drain());
it returns once the queue is empty and the buffered acknowledgements are written, with no
watcher polling beside it.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

import psycopg
from _result import Drain
from bench_pgqueuer import UNFINISHED, fill, queries_on
from pgqueuer import QueueManager
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode

DRIVER = "asyncpg"  # as bench_pgqueuer.py's figures in docs/PERFORMANCE.md


async def enqueue(url: str, jobs: int) -> None:
    await fill(url, DRIVER, jobs)
    await Drain.analyze(url, "pgqueuer", enabled=True)


async def drain(url: str) -> None:
    async with queries_on(url, DRIVER) as queries:
        manager = QueueManager(queries)

        @manager.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        # No periodic folding of the job log into statistics: a drain in scripts/pg_bench.py
        # ends long before its first 30 s tick, but one under valgrind lasts minutes, and a
        # tick there folds every row logged so far (its count went 423k-692k per task).
        await manager.run(mode=QueueExecutionMode.drain, log_aggregation_interval=timedelta(0))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute(UNFINISHED)).fetchone()
    if row is None or row[0] != 0:
        raise SystemExit(f"the drain ended with {row} jobs unfinished")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("step", choices=("enqueue", "drain"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    if args.step == "enqueue":
        asyncio.run(enqueue(args.url, args.jobs))
    else:
        asyncio.run(drain(args.url))


if __name__ == "__main__":
    main()
