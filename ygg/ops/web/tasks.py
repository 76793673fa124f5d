"""The API's door to the store: the same `ygg.api` calls the CLI makes, on a thread of its own.

A store connection of its own on one worker thread, so the event loop never waits on SQLite
and a write nudges the daemons (this one included) exactly as `ygg submit` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ygg import api
from ygg.config import Config
from ygg.errors import InvalidInput
from ygg.ops.status import status_report
from ygg.ops.web import history
from ygg.ops.web.events import EventHub, task_event
from ygg.ops.web.status_cache import StatusCache
from ygg.store.base import Store
from ygg.store.model import MAX_COUNT, STATUSES, US, now_us

T = TypeVar("T")


class TaskApi:
    def __init__(
        self,
        open_store: Callable[[], Store],
        config: Callable[[], Config],
        events: EventHub | None = None,
    ) -> None:
        self._open, self._config, self._events = open_store, config, events
        self._store: Store | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ygg-web-store")
        self._status = StatusCache(self._read_status)

    async def read(self, work: Callable[[Store], T]) -> T:
        """Runs `work` on this API's store thread (for a daemon with no store thread to spare)."""
        return await self._run(work)

    async def _run(self, work: Callable[[Store], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._opened()))

    def _opened(self) -> Store:
        if self._store is None:
            self._store = self._open()
        return self._store

    async def status(self, *, probe: bool = False) -> dict[str, Any]:
        """The report of `ygg status --json`; without a probe, at most about a second old."""
        if not probe:
            return await self._status.get()
        config = self._config()
        return await self._run(lambda store: status_report(config, store, probe=True))

    async def _read_status(self) -> dict[str, Any]:
        config = self._config()
        return await self._run(lambda store: status_report(config, store, probe=False))

    async def list_tasks(
        self, status: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise InvalidInput(
                f"Unknown status {status!r}; the statuses are: {', '.join(STATUSES)}."
            )
        if not 1 <= limit <= MAX_COUNT:
            raise InvalidInput(f"The limit must be from 1 to {MAX_COUNT}, not {limit}.")
        tasks = await self._run(
            lambda store: store.list_tasks(status=status, kind=kind, limit=limit)
        )
        return [task.to_json() for task in tasks]

    async def get(self, task_id: int) -> dict[str, Any]:
        task = await self._run(lambda store: api.get(store, task_id))
        return {**task.to_json(), "prompt": task.prompt}

    async def submit(self, data: Any) -> dict[str, Any]:
        new = api.task_from_json(self._config(), data)  # validated before anything is stored
        try:
            task = await self._run(lambda store: api.submit(store, new, stored=self._announce))
        finally:
            self._status.drop()
        return task.to_json()

    async def cancel(self, task_id: int) -> dict[str, Any]:
        try:
            task, _ = await self._run(lambda store: api.cancel(store, task_id))
        finally:
            self._status.drop()
        return task.to_json()

    async def retry(self, task_id: int) -> dict[str, Any]:
        try:
            task = await self._run(lambda store: api.retry(store, task_id, stored=self._announce))
        finally:
            self._status.drop()
        return task.to_json()

    async def history(self, minutes: int) -> dict[str, Any]:
        now = now_us()
        since_us, bucket_us = history.window(now, minutes)
        rows = await self._run(lambda store: store.history(since_us, bucket_us))
        return history.history_document(rows, now, since_us, bucket_us)

    async def timeline(self, minutes: int) -> dict[str, Any]:
        now = now_us()
        since_us = now - minutes * 60 * US
        rows = await self._run(lambda store: store.finished_since(since_us, history.TIMELINE_LIMIT))
        return history.timeline_document(rows, now, since_us)

    def _announce(self, store: Store, task_id: int) -> None:
        """On the store thread, before the daemons are woken: so watchers hear `queued`
        before the `running` a woken pool announces."""
        if self._events is not None and self._events.streams:
            task = store.get(task_id)
            self._events.publish_threadsafe(task_event(task.id, task.status, kind=task.kind))

    def close(self) -> None:
        """Closes the connection on its own thread and ends the thread (waits for it)."""

        def close_store() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._executor.submit(close_store).result()
        self._executor.shutdown()
