"""procrastinate: N no-op jobs deferred, then drained by one worker (concurrency 10).

Run by run.py inside the comparison venv: python bench_procrastinate.py --url URL
"""

from __future__ import annotations

import asyncio

import procrastinate
from _result import Drain, arguments

DEFER_CHUNK = 1000
STOP_TIMEOUT_S = 30.0
UNFINISHED = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"


async def main() -> None:
    args = arguments(__doc__ or "")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=args.url))
    drain = Drain(
        "procrastinate",
        f"1 worker, concurrency={args.concurrency}",
        args.jobs,
        server_pid=args.server_pid,
    )

    @app.task(name="noop")
    async def noop() -> None:
        drain.count()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, args.jobs, DEFER_CHUNK):
            await noop.batch_defer_async(*[{} for _ in range(min(DEFER_CHUNK, args.jobs - start))])
        await drain.analyze(args.url, "procrastinate_jobs", args.analyze)
        drain.restart_clock()
        # wait=False: the worker returns by itself once it has caught up with the queue.
        worker = asyncio.create_task(
            app.run_worker_async(
                concurrency=args.concurrency, wait=False, install_signal_handlers=False
            )
        )
        await drain.watch(args.url, UNFINISHED, args.timeout_s)
        if drain.timed_out:
            worker.cancel()  # procrastinate shuts its worker down gracefully on cancellation
        await asyncio.wait({worker}, timeout=STOP_TIMEOUT_S)
    drain.emit()


if __name__ == "__main__":
    asyncio.run(main())
