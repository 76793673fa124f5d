"""The daemon's door to the store: one dedicated thread owns the writing SQLite connection.

Why a dedicated thread rather than aiosqlite: every operation that is waiting when the thread
comes round is run in one transaction — one BEGIN IMMEDIATE, one commit, one fsync for many
claims and outcomes (group commit) — and the event loop is woken once per batch, not once per
statement. Each operation runs in a savepoint of its own, so one that fails leaves nothing
behind and the rest of the batch still commits. A lock held by another process blocks this
thread only, never the event loop. Reads that scan (status, pool load) go to a second thread
and connection, outside every write transaction, so they never hold the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import structlog

from ygg.errors import BatchUndone, StoreBusy, StoreUnavailable, YggError
from ygg.store.base import Store
from ygg.store.outage import Outage

T = TypeVar("T")
Item = TypeVar("Item")
P = ParamSpec("P")
Op = Callable[[Store], Any]
_Item = tuple[Op, asyncio.Future[Any]]
_Result = tuple[asyncio.Future[Any], Any, BaseException | None]

log = structlog.get_logger("ygg.store")
MAX_BATCH = 256


class StoreAbandoned(StoreUnavailable):
    """The daemon stopped waiting for the store; the write was not made (leases recover it)."""


# How a daemon that gave up on writes while stopping ends (exit status 1): the operator hears.
STOPPED_UNRECORDED = (
    "Stopped without recording every outcome: the store stayed unavailable; the leases of "
    "the tasks still marked running will return them to the queue."
)


class StoreThread:
    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        # The loop hands over everything submitted in one iteration as one list, so a burst
        # of completions becomes one batch and one wake-up of this thread, not dozens.
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._pending: list[_Item] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._abandoned = threading.Event()  # stop waiting out an unavailable store
        self._gave_up = False  # abandoned while unavailable: fail every later write at once
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ygg-store-read")
        self._read_store: Store | None = None
        self.outage = Outage()  # a database out of reach, as /healthz and systemd hear of it

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="ygg-store", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._open_error is not None:
            raise self._open_error

    def submit(
        self, method: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[T]:
        """Queues `method(store, *args, **kwargs)` for the store thread, batched with others.

        The operation runs even if nobody awaits the future any more."""
        assert self._loop is not None, "StoreThread.start() was not awaited"
        future: asyncio.Future[T] = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._hand_over_next)
        self._pending.append((lambda store: _on(store, method)(*args, **kwargs), future))
        return future

    def submit_each(
        self, many: Callable[[Store, list[Item]], list[T]], item: Item
    ) -> asyncio.Future[T]:
        """Queues `many(store, [item])`; `item` answers the future. Items for the same `many`
        queued one after another in a batch are run as one call (say, the completions of a
        burst recorded in one statement). `many` answers one result per item, in order. If a
        call of several items fails, the whole batch is undone and run again with each item
        alone, so that only the item at fault fails."""
        assert self._loop is not None, "StoreThread.start() was not awaited"
        future: asyncio.Future[T] = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._hand_over_next)
        self._pending.append((_Each(many, item), future))
        return future

    def _hand_over_next(self) -> None:
        """One loop iteration later: the attempts that just queued their outcomes have woken
        their pools, whose claims run in the iteration after theirs; handing over then puts
        those claims in the same batch (one transaction) as the outcomes that freed the slots."""
        assert self._loop is not None
        self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        pending, self._pending = self._pending, []
        if pending:  # stop() may have handed them over already
            self._queue.put(pending)

    async def call(
        self, method: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self.submit(method, *args, **kwargs)

    async def read(
        self, method: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Runs a read-only `method` on the reading connection, outside any write transaction.
        Transient trouble (say, a lost connection to a database server) is waited out as for
        writes: the reading connection is made again on the next try."""
        return await asyncio.get_running_loop().run_in_executor(
            self._reader, self._read_waiting, lambda store: _on(store, method)(*args, **kwargs)
        )

    def _read_waiting(self, op: Op) -> Any:
        attempt = 0
        while True:
            try:
                result = op(self._reading_store())
            except StoreUnavailable as exc:
                attempt += 1
                if not self._wait_out(exc, attempt):
                    raise
            else:
                self.outage.recovered()
                return result

    def _reading_store(self) -> Store:
        if self._read_store is None:
            self._read_store = self._open()
        return self._read_store

    def abandon(self) -> None:
        """A forced stop (or a stop before the store was ever reached): stop waiting out a
        locked, full or unreachable store. Writes that cannot be made now fail with
        StoreAbandoned; the leases of their tasks bring them back."""
        self._abandoned.set()

    async def stop(self) -> None:
        if self._thread is not None:
            if self._pending:
                self._hand_over()
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        await asyncio.get_running_loop().run_in_executor(self._reader, self._close_reader)
        self._reader.shutdown()

    def _close_reader(self) -> None:
        if self._read_store is not None:
            self._read_store.close()
            self._read_store = None

    # --- the thread --------------------------------------------------------------------------
    def _open_waiting(self) -> Store:
        """Opens the store; a database out of reach (say, its server is down as the daemon
        starts) is waited for with backoff, as a write would be, until it answers or the
        daemon is told to stop (StoreAbandoned)."""
        attempt = 0
        while True:
            try:
                store = self._open()
            except StoreUnavailable as exc:
                attempt += 1
                if not self._wait_out(exc, attempt):
                    raise StoreAbandoned(
                        f"Stopped before the store could be opened: {exc}"
                    ) from None
            else:
                self.outage.recovered()
                return store

    def _run(self) -> None:
        try:
            store = self._open_waiting()
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

    def _run_batch(self, store: Store, batch: list[_Item]) -> list[_Result]:
        # First without a savepoint per operation (on a database server each costs two round
        # trips); if one of them failed, the engine undid the batch whole: run it again with
        # them, so that only the failed operation's changes are lost.
        savepoints = False
        attempt = 0
        while not self._gave_up:
            try:
                with store.batch(savepoints=savepoints):
                    results = _run_all(store, batch, merge=not savepoints)
            except BatchUndone:
                savepoints = True
            except StoreUnavailable as exc:
                attempt += 1
                if not self._wait_out(exc, attempt):
                    self._gave_up = True
            except Exception as exc:  # the commit itself failed (say, a damaged file)
                return [(future, None, exc) for _, future in batch]
            else:
                self.outage.recovered()
                return results
        error = StoreAbandoned("The daemon stopped before the store could take this write.")
        return [(future, None, error) for _, future in batch]

    def _wait_out(self, exc: StoreUnavailable, attempt: int) -> bool:
        """Another process holds the lock, the disk is full, the database server is out of
        reach: the daemon pauses rather than fail a task for it, trying again with backoff
        (the `attempt`-th failure in a row). Gives up only on a forced stop (leases then
        recover the tasks)."""
        if self._abandoned.is_set():
            log.warning("store_writes_abandoned", error=str(exc))
            return False
        if isinstance(exc, StoreBusy):  # the busy timeout has already waited
            log.warning("store_locked", error=str(exc))
            return True
        return not self._abandoned.wait(self.outage.failed(exc, attempt))

    def _deliver(self, results: list[_Result]) -> None:
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


def _on(store: Store, method: Callable[Concatenate[Store, P], T]) -> Callable[P, T]:
    """`method` bound to `store`. `Store.claim` names the interface's method, whose body is a
    stub: the engine's own method of that name is the one that runs."""
    if method.__qualname__.startswith(f"{Store.__name__}."):
        bound: Callable[P, T] = getattr(store, method.__name__)
        return bound
    return functools.partial(method, store)


class _Each:
    """One item for a `many` operation (StoreThread.submit_each); alone, a call of its own."""

    def __init__(self, many: Callable[[Store, list[Any]], list[Any]], item: Any) -> None:
        self.many = many
        self.item = item

    def __call__(self, store: Store) -> Any:
        return self.many(store, [self.item])[0]


def _run_all(store: Store, batch: list[_Item], *, merge: bool) -> list[_Result]:
    """Every operation of the batch, in order; with `merge`, neighbouring items of the same
    `many` operation as one call."""
    results: list[_Result] = []
    start = 0
    while start < len(batch):
        op, future = batch[start]
        end = start + 1
        if merge and isinstance(op, _Each):
            while end < len(batch) and _same_many(batch[end][0], op):
                end += 1
        if end - start == 1:
            results.append((future, *_run_op(store, op)))
        else:
            results += _run_merged(store, batch[start:end])
        start = end
    return results


def _same_many(op: Op, first: _Each) -> bool:
    return isinstance(op, _Each) and op.many is first.many


def _run_merged(store: Store, group: list[_Item]) -> list[_Result]:
    many = cast(_Each, group[0][0]).many
    items = [cast(_Each, op).item for op, _ in group]
    values, error = _run_op(store, lambda s: many(s, items))
    if error is not None:  # which item was at fault: run the batch again, each item alone
        raise BatchUndone(f"a call of {len(items)} items failed: {error!r}")
    return [(future, value, None) for (_, future), value in zip(group, values, strict=True)]


def _run_op(store: Store, op: Op) -> tuple[Any, BaseException | None]:
    """One operation in its own savepoint: if it fails, only its own changes are undone and
    only its caller hears of it. (In a batch without savepoints, the engine undoes the whole
    batch instead and raises BatchUndone.) Transient trouble fails the whole batch, to be
    retried."""
    try:
        with store.batch():
            return op(store), None
    except StoreUnavailable:
        raise
    except YggError as exc:
        return None, exc
    except Exception as exc:
        log.exception("store_operation_failed")
        return None, exc
