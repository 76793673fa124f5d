"""Reading every HTTP pool's host for its load, in both loop modes, and recording it.

`HostWatch` keeps the latest `HostTelemetry` of each pool (what `/status` and `/metrics`
serve) and says which changed, so the store is written only then (what `ygg status` reads,
from any machine). A host that says nothing is asked again only every SILENT_POLL_S, and its
silence is logged once, at debug level. Nothing here touches a claim: a host's telemetry never
decides what runs.

The async dispatcher runs `watch_hosts` as a supervised side task; the legacy one runs
`HostWatchThread`, whose changes its supervisor records on its own store connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog

from ygg.backends.host_probe import HTTP_BACKENDS, HostProbe
from ygg.backends.telemetry import HostTelemetry
from ygg.config import PoolConfig
from ygg.store.base import Store

if TYPE_CHECKING:
    from ygg.dispatch.state import Shared

log = structlog.get_logger("ygg.dispatch")
SILENT_POLL_S = 60.0  # a host that said nothing is asked this often (it may be restarted
# with --metrics); one that answers every `daemon.telemetry_seconds`
TICK_S = 1.0  # how soon pools added by a reload are first read
Changes = dict[str, HostTelemetry | None]


def _probe_key(pool: PoolConfig) -> tuple[Any, ...]:
    return pool.backend, pool.url, pool.api_key_env


class HostWatch:
    """The hosts of the configured HTTP pools: a probe each, when each is due, what each said."""

    def __init__(self, silent_poll_s: float = SILENT_POLL_S) -> None:
        self.silent_poll_s = silent_poll_s
        self.latest: dict[str, HostTelemetry] = {}
        self._probes: dict[str, tuple[tuple[Any, ...], HostProbe]] = {}
        self._due_s: dict[str, float] = {}
        self._warned: dict[str, tuple[str, ...]] = {}

    def reading(self, pool: str) -> dict[str, Any] | None:
        """The latest reading of `pool`'s host as JSON, or None."""
        found = self.latest.get(pool)
        return found.to_json() if found is not None else None

    async def refresh(self, pools: Iterable[PoolConfig], now_s: float, poll_s: float) -> Changes:
        """Reads the hosts that are due, each every `poll_s` (0: none at all); returns the pools
        whose reading changed (None: the host fell silent, or the pool is gone)."""
        changes: Changes = {}
        wanted = {p.name: p for p in pools if p.backend in HTTP_BACKENDS and p.url and poll_s > 0}
        for name in [n for n in self._probes if n not in wanted]:
            await self._drop(name, changes)
        for name, pool in wanted.items():
            key = _probe_key(pool)
            if name in self._probes and self._probes[name][0] != key:
                await self._drop(name, changes)  # a reload pointed it at another host
            if name not in self._probes:
                self._probes[name] = key, HostProbe(pool)
                self._due_s[name] = now_s
        due = [n for n in self._probes if self._due_s[n] <= now_s]
        readings = await asyncio.gather(
            *(self._probes[n][1].read() for n in due), return_exceptions=True
        )
        for name, found in zip(due, readings, strict=True):
            if isinstance(found, asyncio.CancelledError):
                raise found
            if isinstance(found, BaseException):  # a view must never take the daemon down
                log.warning("host_telemetry_failed", pool=name, error=repr(found))
            reading = found if isinstance(found, HostTelemetry) else None
            self._due_s[name] = now_s + (poll_s if reading else max(poll_s, self.silent_poll_s))
            self._learn(name, reading, changes)
        return changes

    def _learn(self, name: str, reading: HostTelemetry | None, changes: Changes) -> None:
        before = self.latest.get(name)
        if reading is None:
            if before is not None or name not in self._warned:
                log.debug("host_telemetry_none", pool=name)
            self._warned[name] = ()
            if before is not None:
                del self.latest[name]
                changes[name] = None
            return
        new = tuple(w for w in reading.warnings if w not in self._warned.get(name, ()))
        for warning in new:
            log.warning("host_warning", pool=name, warning=warning)
        self._warned[name] = reading.warnings
        if reading != before:
            self.latest[name] = reading
            changes[name] = reading

    async def _drop(self, name: str, changes: Changes) -> None:
        _, probe = self._probes.pop(name)
        self._due_s.pop(name, None)
        self._warned.pop(name, None)
        await probe.aclose()
        if self.latest.pop(name, None) is not None:
            changes[name] = None

    def next_due_s(self) -> float:
        return min(self._due_s.values(), default=time.monotonic() + TICK_S)

    async def aclose(self) -> None:
        for _, probe in self._probes.values():
            await probe.aclose()
        self._probes.clear()


async def watch_hosts(d: Shared, watch: HostWatch) -> None:
    """The async mode's side task: read the hosts, record each change (as an errand, so a
    store that is slow to write never delays the next reading)."""
    try:
        while True:
            pools = [r.config for r in d.runners.values()]
            changes = await watch.refresh(pools, time.monotonic(), d.config.daemon.telemetry_s)
            for pool, reading in changes.items():
                d.fire(_record(d, pool, reading.to_json() if reading is not None else None))
            wait_s = min(watch.next_due_s() - time.monotonic(), TICK_S)
            await asyncio.sleep(max(wait_s, 0.05))
    finally:
        await watch.aclose()


async def _record(d: Shared, pool: str, data: dict[str, Any] | None) -> None:
    """Writes one change, then tells the event streams (the dashboard reads the store)."""
    await d.store.call(Store.set_telemetry, d.owner, pool, data, d.now_us())
    d.observer.events.publish({"type": "host", "pool": pool, "telemetry": data})


class HostWatchThread:
    """The legacy mode's reader: a thread with an event loop of its own. `take()` hands the
    changes over to the supervisor, which records them."""

    def __init__(self, pools: Callable[[], list[PoolConfig]], poll_s: Callable[[], float]) -> None:
        self.watch = HostWatch()
        self._pools, self._poll_s = pools, poll_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: Changes = {}
        self._running: tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None = None
        self.thread = threading.Thread(target=self._main, name="host-watch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def take(self) -> Changes:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ends the thread; a reading under way is cut short, not waited for."""
        self._stop.set()
        with self._lock:
            running = self._running
        if running is not None:
            loop, task = running
            with contextlib.suppress(RuntimeError):  # its loop has just closed
                loop.call_soon_threadsafe(task.cancel)
        self.thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except asyncio.CancelledError:
            pass  # stopped
        except Exception:  # a view, not a part of dispatch: it may end, the daemon runs on
            log.exception("host_watch_failed")

    async def _run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            self._running = asyncio.get_running_loop(), task
        try:
            while not self._stop.is_set():
                now_s = time.monotonic()
                changes = await self.watch.refresh(self._pools(), now_s, self._poll_s())
                with self._lock:
                    self._pending.update(changes)
                wait_s = min(self.watch.next_due_s() - time.monotonic(), TICK_S)
                await asyncio.sleep(max(wait_s, 0.05))
        finally:
            await self.watch.aclose()
