"""The StoreThread: the daemon's batching door to the store, under a real event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ygg.errors import InvalidInput, StoreError, TaskNotFound
from ygg.store import NewTask, Outcome, Store, open_store
from ygg.store.model import US
from ygg.store.writer import StoreThread

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000 * US
T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 5.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


def task(title: str, *after: int) -> NewTask:
    return NewTask(title=title, kind="k", depends_on=after)


async def started(db: str, **options: Any) -> StoreThread:
    thread = StoreThread(lambda: open_store(db, **options))
    await thread.start()
    return thread


def read(db: str) -> dict[int, str]:
    store = open_store(db)
    try:
        return {t.id: t.title for t in store.list_tasks(limit=100_000)}
    finally:
        store.close()


def test_concurrent_enqueues_get_distinct_ids(store_url: str) -> None:
    db = store_url

    async def main() -> list[int]:
        thread = await started(db)
        try:
            return await asyncio.gather(
                *(thread.call(Store.enqueue, task(f"t{i}"), NOW) for i in range(500))
            )
        finally:
            await thread.stop()

    ids = run(main)
    assert len(set(ids)) == 500
    assert read(db) == {task_id: f"t{i}" for i, task_id in enumerate(ids)}


def test_concurrent_claims_share_the_slots(store_url: str) -> None:
    db = store_url

    async def main() -> list[list[int]]:
        thread = await started(db)
        try:
            for i in range(50):
                await thread.call(Store.enqueue, task(f"t{i}"), NOW)
            batches = await asyncio.gather(
                *(
                    thread.call(
                        Store.claim, "p", ["k"], 3, slots=20, owner=1, lease_us=US, now_us=NOW
                    )
                    for _ in range(30)
                )
            )
            return [[c.task_id for c in batch] for batch in batches]
        finally:
            await thread.stop()

    claimed = [task_id for batch in run(main) for task_id in batch]
    assert len(claimed) == len(set(claimed)) == 20
    assert sorted(claimed) == sorted(read(db))[:20]  # FIFO: the first twenty


def test_a_failing_operation_fails_only_its_own_caller(store_url: str) -> None:
    db = store_url
    busy, release = threading.Event(), threading.Event()

    def hold(store: Store) -> None:
        """Keeps the store thread busy until every call below is queued behind it."""
        busy.set()
        release.wait(5)

    def broken(store: Store) -> None:
        store.enqueue(task("written, then rolled back"), NOW)
        raise ValueError("a bug in an operation")

    async def main() -> tuple[int, int, list[Any]]:
        thread = await started(db)
        try:
            first = await thread.call(Store.enqueue, task("first"), NOW)
            finished = await thread.call(Store.enqueue, task("finished"), NOW)
            (claim,) = await thread.call(
                Store.claim, "p", ["k"], 1, slots=1, owner=1, lease_us=US, now_us=NOW
            )
            assert claim.task_id == first
            await thread.call(Store.complete, first, claim.token, Outcome(), NOW)

            gate = asyncio.ensure_future(thread.call(hold))
            assert await asyncio.to_thread(busy.wait, 5)
            calls: list[Awaitable[Any]] = [
                *(thread.call(Store.enqueue, task(f"good{i}"), NOW) for i in range(4)),
                thread.call(Store.enqueue, task("orphan", 999_999), NOW),
                thread.call(Store.enqueue, task("after first", first), NOW),
                thread.call(Store.cancel, first, NOW),  # already done
                thread.call(broken),
                *(thread.call(Store.enqueue, task(f"good{i}"), NOW) for i in range(4, 8)),
            ]
            pending = [asyncio.ensure_future(c) for c in calls]
            await asyncio.sleep(0)  # every call has queued its operation
            await asyncio.sleep(0.01)
            release.set()
            await gate
            results = await asyncio.gather(*pending, return_exceptions=True)
            return first, finished, results
        finally:
            release.set()
            await thread.stop()

    first, finished, results = run(main)
    good = [*results[:4], results[5], *results[8:]]
    assert all(isinstance(r, int) for r in good), results
    assert isinstance(results[4], TaskNotFound)
    assert type(results[6]) is InvalidInput
    assert isinstance(results[7], ValueError)
    titles = read(db)
    assert titles == {
        first: "first",
        finished: "finished",
        **dict(
            zip(
                good,
                [f"good{i}" for i in range(4)]
                + ["after first"]
                + [f"good{i}" for i in range(4, 8)],
                strict=True,
            )
        ),
    }
    assert len(set(good)) == len(good) == 9


def test_a_lock_held_by_another_connection_delays_but_does_not_fail(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    open_store(db).close()
    locked, done = threading.Event(), threading.Event()
    released_at: list[float] = []

    def hold_lock(seconds: float) -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(seconds)
            released_at.append(time.monotonic())
            conn.execute("COMMIT")
        finally:
            conn.close()
            done.set()

    async def main() -> tuple[int, float, float, int]:
        thread = await started(db, busy_timeout_s=0.2)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        holder = threading.Thread(target=hold_lock, args=(1.5,), daemon=True)
        try:
            holder.start()
            assert await asyncio.to_thread(locked.wait, 5)
            asked = time.monotonic()
            task_id = await thread.call(Store.enqueue, task("patient"), NOW)
            answered = time.monotonic()
            return task_id, asked, answered, ticks
        finally:
            ticker.cancel()
            await thread.stop()
            await asyncio.to_thread(done.wait, 5)

    task_id, asked, answered, ticks = run(main)
    assert released_at and answered >= released_at[0]
    assert answered - asked > 1.0  # it really waited, through several busy timeouts
    assert ticks >= 15  # and the event loop kept running meanwhile
    assert read(db) == {task_id: "patient"}


def test_calls_queued_before_stop_are_answered(store_url: str) -> None:
    db = store_url

    async def main() -> list[int]:
        thread = await started(db)
        pending = [
            asyncio.ensure_future(thread.call(Store.enqueue, task(f"t{i}"), NOW)) for i in range(50)
        ]
        await asyncio.sleep(0)
        await thread.stop()
        return await asyncio.gather(*pending)

    ids = run(main)
    assert len(set(ids)) == 50
    assert set(read(db)) == set(ids)


def test_a_store_that_cannot_be_opened_fails_start(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE other (x)")
    conn.close()

    async def main() -> None:
        await started(str(path))

    with pytest.raises(StoreError):
        run(main)


def test_items_queued_together_run_as_one_call_and_a_bad_one_fails_alone(store_url: str) -> None:
    db = store_url
    busy, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def hold(store: Store) -> None:
        busy.set()
        release.wait(5)

    def enqueue_each(store: Store, titles: list[str]) -> list[int]:
        calls.append(list(titles))
        ids = []
        for title in titles:
            ids.append(store.enqueue(task(title), NOW))
            if title == "bad":
                raise ValueError("a bug in an operation")
        return ids

    async def main() -> list[Any]:
        thread = await started(db)
        try:
            gate = asyncio.ensure_future(thread.call(hold))
            assert await asyncio.to_thread(busy.wait, 5)
            burst = [thread.submit_each(enqueue_each, f"a{i}") for i in range(3)]
            between = thread.submit(Store.enqueue, task("between"), NOW)
            burst += [thread.submit_each(enqueue_each, t) for t in ("b0", "bad", "b1")]
            await asyncio.sleep(0.01)
            release.set()
            await gate
            return await asyncio.gather(*burst, between, return_exceptions=True)
        finally:
            release.set()
            await thread.stop()

    results = run(main)
    # Neighbours go together (never across another operation); the failed call made the batch
    # run again with each item alone, and only the bad one failed.
    assert calls[:2] == [["a0", "a1", "a2"], ["b0", "bad", "b1"]]
    assert [c for c in calls[2:]] == [["a0"], ["a1"], ["a2"], ["b0"], ["bad"], ["b1"]]
    assert isinstance(results[4], ValueError)
    good = [r for i, r in enumerate(results) if i != 4]
    assert all(isinstance(r, int) for r in good), results
    assert sorted(read(db).values()) == sorted(["a0", "a1", "a2", "b0", "b1", "between"])
