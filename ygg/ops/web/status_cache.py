"""`GET /api/status` from the daemon's memory: the report read from the store at most about a
second ago, so a page polling it (or many pages) costs the store one read a second, and an
answer takes no index scan however long the queue (a count of 100,000 queued rows takes
10 ms or more on either engine).

The report still comes from the store, never from this daemon's own view, so it shows every
daemon's work. A report up to `max_age_s` old is served as it is; one up to `stale_s` old is
served while a fresh one is read behind it; an older one, or none, is waited for. A write
through the API drops it, so its writer reads its own write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Report = dict[str, Any]
MAX_AGE_S = 1.0
STALE_S = 5.0


class StatusCache:
    def __init__(
        self,
        load: Callable[[], Awaitable[Report]],
        *,
        max_age_s: float = MAX_AGE_S,
        stale_s: float = STALE_S,
    ) -> None:
        self._load = load
        self.max_age_s, self.stale_s = max_age_s, stale_s
        self._report: Report | None = None
        self._taken_at = 0.0  # monotonic: when the read that made `_report` began
        self._reading: asyncio.Task[Report] | None = None
        self._generation = 0  # moved by `drop`: a read begun before it is not kept

    async def get(self) -> Report:
        age_s = time.monotonic() - self._taken_at
        if self._report is not None and age_s <= self.stale_s:
            if age_s > self.max_age_s:
                self._refresh()  # served stale once, fresh from the next request on
            return self._report
        return await asyncio.shield(self._refresh())

    def drop(self) -> None:
        """The queue changed through this server: the next answer is read afresh (by a read
        that begins now, not one already under way)."""
        self._report, self._reading = None, None
        self._generation += 1

    def _refresh(self) -> asyncio.Task[Report]:
        if self._reading is None:
            read = self._read(self._generation, time.monotonic())
            self._reading = asyncio.create_task(read, name="ygg-status-read")
            self._reading.add_done_callback(_seen)
        return self._reading

    async def _read(self, generation: int, started: float) -> Report:
        try:
            report = await self._load()
        finally:
            if generation == self._generation:
                self._reading = None
        if generation == self._generation:
            self._report, self._taken_at = report, started
        return report


def _seen(task: asyncio.Task[Report]) -> None:
    # A read behind a stale answer that fails has no one waiting for it: the next request
    # reads again (and hears the error), so the error is only marked as seen here.
    if not task.cancelled():
        task.exception()
