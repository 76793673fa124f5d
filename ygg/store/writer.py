"""The daemon's door to the store: one dedicated thread owns the SQLite connection.

Why a dedicated thread rather than aiosqlite: every operation that is waiting when the thread
comes round is run in one transaction — one BEGIN IMMEDIATE, one commit, one fsync for many
claims and outcomes (group commit) — and the event loop is woken once per batch, not once per
statement. A lock held by another process blocks this thread only, never the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import structlog

from ygg.errors import StoreBusy, StoreFull, YggError
from ygg.store.sqlite import SQLiteStore

T = TypeVar("T")
P = ParamSpec("P")
Op = Callable[[SQLiteStore], Any]
_Item = tuple[Op, asyncio.Future[Any]]

log = structlog.get_logger("ygg.store")
MAX_BATCH = 256
FULL_DISK_RETRY_S = 1.0  # how often a full disk is tried again while the daemon pauses


class StoreThread:
    def __init__(self, open_store: Callable[[], SQLiteStore]) -> None:
        self._open = open_store
        # The loop hands over everything submitted in one iteration as one list, so a burst
        # of completions becomes one batch and one wake-up of this thread, not dozens.
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._pending: list[_Item] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._stopping = threading.Event()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="ygg-store", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._open_error is not None:
            raise self._open_error

    def submit(
        self, method: Callable[Concatenate[SQLiteStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[T]:
        """Queues `method(store, *args, **kwargs)` for the store thread, batched with others.

        The operation runs even if nobody awaits the future any more."""
        assert self._loop is not None, "StoreThread.start() was not awaited"
        future: asyncio.Future[T] = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._hand_over)
        self._pending.append((lambda store: method(store, *args, **kwargs), future))
        return future

    def _hand_over(self) -> None:
        pending, self._pending = self._pending, []
        self._queue.put(pending)

    async def call(
        self, method: Callable[Concatenate[SQLiteStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self.submit(method, *args, **kwargs)

    async def stop(self) -> None:
        if self._thread is not None:
            if self._pending:
                self._hand_over()
            self._stopping.set()
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # --- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            store = self._open()
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                batch = self._queue.get()
                if batch is None:
                    return
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # finish this batch, then stop
                        break
                    batch += more
                self._deliver(self._run_batch(store, batch))
        finally:
            store.close()

    def _run_batch(self, store: SQLiteStore, batch: list[_Item]) -> list[tuple[Any, Any, Any]]:
        while True:
            try:
                with store.write():
                    return [(future, op(store), None) for op, future in batch]
            except (StoreBusy, StoreFull) as exc:
                if not self._wait_out(exc):
                    return [(future, None, exc) for _, future in batch]
            except Exception:
                # One bad operation must not sink the rest: run each in its own transaction.
                return [(future, *self._run_one(store, op)) for op, future in batch]

    def _run_one(self, store: SQLiteStore, op: Op) -> tuple[Any, BaseException | None]:
        while True:
            try:
                with store.write():  # its own transaction: a failing op leaves nothing behind
                    return op(store), None
            except (StoreBusy, StoreFull) as exc:
                if not self._wait_out(exc):
                    return None, exc
            except YggError as exc:
                return None, exc
            except Exception as exc:
                log.exception("store_operation_failed")
                return None, exc

    def _wait_out(self, exc: StoreBusy | StoreFull) -> bool:
        """Another process holds the lock, or the disk is full: the daemon pauses rather than
        fail a task for it. Gives up only when stopping (leases then recover the tasks)."""
        if isinstance(exc, StoreBusy):
            log.warning("store_locked", error=str(exc))
            return True
        log.error("store_disk_full", error=str(exc), retry_in_s=FULL_DISK_RETRY_S)
        return not self._stopping.wait(FULL_DISK_RETRY_S)

    def _deliver(self, results: list[tuple[Any, Any, Any]]) -> None:
        assert self._loop is not None

        def settle() -> None:
            for future, value, error in results:
                if future.done():
                    continue
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)

        with contextlib.suppress(RuntimeError):  # the loop closed under us on a forced exit
            self._loop.call_soon_threadsafe(settle)
