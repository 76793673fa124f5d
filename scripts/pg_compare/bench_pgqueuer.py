"""pgqueuer: N no-op jobs enqueued, then drained by one QueueManager, with or without a limit.

Run by run.py inside the comparison venv: python bench_pgqueuer.py --url URL [--limit 10]
The limit is pgqueuer's own: `concurrency_limit` on the entrypoint, enforced in its dequeue SQL
across all workers (0 = none). The driver is asyncpg, pgqueuer's first one; with its psycopg
driver, LISTEN and every query share one connection whose notification wait (1 s) delays them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import psycopg
from _result import Drain, arguments
from pgqueuer import AsyncpgDriver, PsycopgDriver, QueueManager
from pgqueuer.models import Job
from pgqueuer.queries import Queries

STOP_TIMEOUT_S = 30.0
UNFINISHED = "SELECT count(*) FROM pgqueuer"  # a finished job's row is deleted (and logged)


@contextlib.asynccontextmanager
async def queries_on(url: str, driver: str) -> AsyncIterator[Queries]:
    """pgqueuer's Queries over one fresh connection of the chosen driver."""
    if driver == "asyncpg":
        apg = await asyncpg.connect(url)
        try:
            yield Queries(AsyncpgDriver(apg))
        finally:
            await apg.close()
        return
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        yield Queries(PsycopgDriver(conn))


async def fill(url: str, driver: str, jobs: int) -> None:
    """pgqueuer's schema, and `jobs` no-op jobs queued."""
    async with queries_on(url, driver) as queries:
        await queries.install()
        await queries.enqueue(["noop"] * jobs, [None] * jobs, [0] * jobs)


async def drain_with(args: argparse.Namespace, drain: Drain) -> None:
    async with queries_on(args.url, args.driver) as queries:
        manager = QueueManager(queries)

        @manager.entrypoint("noop", concurrency_limit=args.limit)
        async def noop(job: Job) -> None:
            drain.count()

        drain.restart_clock()
        worker = asyncio.create_task(manager.run())
        await drain.watch(args.url, UNFINISHED, args.timeout_s)
        manager.shutdown.set()
        await asyncio.wait({worker}, timeout=STOP_TIMEOUT_S)
        if not worker.done():
            worker.cancel()
            await asyncio.wait({worker})


async def main() -> None:
    args = arguments(__doc__ or "")
    limit = f"concurrency_limit={args.limit}" if args.limit else "no concurrency limit"
    drain = Drain("pgqueuer", f"{limit}, {args.driver}", args.jobs, server_pid=args.server_pid)
    await fill(args.url, args.driver, args.jobs)
    await drain.analyze(args.url, "pgqueuer", args.analyze)
    await drain_with(args, drain)
    drain.emit()


if __name__ == "__main__":
    asyncio.run(main())
