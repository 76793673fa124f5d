"""The legacy mode's HTTP server: the same app as the async mode's (status, metrics, healthz,
the task API, events and the dashboard), served by uvicorn on an event loop in a thread of
its own, since the legacy dispatcher itself has no loop.

The worker threads publish their tasks' changes with `EventHub.publish_threadsafe`; reads
for `/status` and `/metrics` go through the task API's store thread, never the workers'.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import TYPE_CHECKING

import structlog

from ygg.ops.http_status import StatusServer, start_status_server
from ygg.ops.snapshot import RunningInfo, Snapshot, build_snapshot, daemon_info, pools_of
from ygg.ops.web.events import pool_event, task_event
from ygg.ops.web.tasks import TaskApi
from ygg.store import open_store
from ygg.store.model import US, now_us

if TYPE_CHECKING:
    from ygg.dispatch.legacy import LegacyDispatcher
    from ygg.dispatch.legacy_worker import Worker
    from ygg.store.base import Store

log = structlog.get_logger("ygg.dispatch.legacy")
Limits = dict[str, int]  # pool -> its stored limit
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class LegacyWeb:
    """`start()` from the supervisor's thread, `stop()` at the end; both wait for the thread."""

    def __init__(self, legacy: LegacyDispatcher, listen: str, token: str | None) -> None:
        self.legacy, self.listen, self.token = legacy, listen, token
        self.metrics = legacy.metrics
        self.started_us = now_us()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._up = threading.Event()
        self._tasks: TaskApi | None = None
        self._thread = threading.Thread(target=self._main, name="ygg-web", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._up.wait(START_TIMEOUT_S):
            log.warning("status_server_unavailable", listen=self.listen, error="start timed out")

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(STOP_TIMEOUT_S)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # an optional extra: the dispatcher runs on without it
            log.error("status_server_died", error=repr(exc))
        finally:
            self._up.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        legacy = self.legacy
        db = legacy.config.daemon.db
        self._tasks = TaskApi(
            lambda: open_store(db, busy_timeout_s=5.0), lambda: legacy.config, legacy.events
        )
        server: StatusServer | None = None
        try:
            server = await start_status_server(
                self.listen,
                self.token,
                self.snapshot,
                legacy.progress.healthy,
                self.metrics,
                tasks=self._tasks,
                events=legacy.events,
            )
        except OSError as exc:
            log.warning("status_server_unavailable", listen=self.listen, error=str(exc))
        self._up.set()
        try:
            if server is not None:
                await self._stop.wait()
        finally:
            if server is not None:
                await server.close()
            await asyncio.to_thread(self._tasks.close)

    async def snapshot(self) -> Snapshot:
        assert self._tasks is not None
        legacy = self.legacy
        config = legacy.config
        kinds = {name: pool.kinds for name, pool in config.pools.items()}

        def read(store: Store) -> tuple[dict[str, tuple[int, int]], dict[str, int], Limits]:
            limits = {name: x.limit for name, x in store.pool_limits().items()}
            return store.pool_load(kinds), store.counts(), limits

        # The stored limits too: another daemon (an adaptive pool, a reload) may have set them.
        load, counts, limits = await self._tasks.read(read)
        now, mono = now_us(), time.monotonic()
        running = [
            RunningInfo(
                r.claim.task_id,
                r.claim.title,
                r.claim.kind,
                w.pool.name,
                r.claim.attempt,
                now - int((mono - r.started) * US),
            )
            for w in legacy.all_workers()
            if (r := w.running) is not None
        ]
        path = str(config.path) if config.path else None
        return build_snapshot(
            daemon=daemon_info(os.getpid(), "legacy", self.started_us, path, config.daemon.db),
            pools=pools_of(config, limits=limits),
            load=load,
            counts=counts,
            running=running,
        )


def announce(worker: Worker, task_id: int, status: str | None, **extra: object) -> None:
    """A worker's task changed: its event and its pool's (one slot: running 0 or 1)."""
    events = worker.legacy.events
    if not events.streams:
        return
    events.publish_threadsafe(task_event(task_id, status, pool=worker.pool.name, **extra))
    running = 1 if status == "running" else 0
    events.publish_threadsafe(pool_event(worker.pool.name, running, 1, "closed", None))
