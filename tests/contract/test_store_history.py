"""The dashboard's look back, on every engine: finished tasks by when they finished."""

from __future__ import annotations

from tests.contract.test_store import NOW, claim, submit
from ygg.store import Store
from ygg.store.model import US, Outcome

MINUTE = 60 * US


def finish_at(store: Store, title: str, *, started: int, finished: int, ok: bool = True) -> int:
    task_id = submit(store, title, now=NOW)
    (c,) = claim(store, [title], pool="gpu", now=started)
    if ok:
        store.complete(c.task_id, c.token, Outcome(result="ok"), finished)
    else:
        store.fail(c.task_id, c.token, "boom", retry_at_us=None, charge=False, now_us=finished)
    return task_id


def test_finished_since_is_newest_first_bounded_and_windowed(store: Store) -> None:
    old = finish_at(store, "old", started=NOW + MINUTE, finished=NOW + 2 * MINUTE)
    a = finish_at(store, "a", started=NOW + 10 * MINUTE, finished=NOW + 11 * MINUTE)
    b = finish_at(store, "b", started=NOW + 10 * MINUTE, finished=NOW + 12 * MINUTE, ok=False)
    submit(store, "still queued")
    rows = store.finished_since(NOW + 5 * MINUTE, 10)
    assert [(r.task_id, r.pool, r.status) for r in rows] == [
        (b, "gpu", "failed"),
        (a, "gpu", "done"),
    ]
    assert rows[0].started_us == NOW + 10 * MINUTE and rows[0].finished_us == NOW + 12 * MINUTE
    assert [r.task_id for r in store.finished_since(NOW, 1)] == [b]
    assert old not in [r.task_id for r in store.finished_since(NOW, 10)][:2]


def test_history_counts_per_pool_status_and_bucket_with_queue_waits(store: Store) -> None:
    finish_at(store, "a", started=NOW + 1 * MINUTE, finished=NOW + 2 * MINUTE)
    finish_at(store, "b", started=NOW + 3 * MINUTE, finished=NOW + 4 * MINUTE)
    finish_at(store, "c", started=NOW + 6 * MINUTE, finished=NOW + 7 * MINUTE, ok=False)
    rows = store.history(NOW, 5 * MINUTE)
    assert [(r.pool, r.status, r.bucket, r.tasks) for r in rows] == [
        ("gpu", "done", 0, 2),
        ("gpu", "failed", 1, 1),
    ]
    assert rows[0].wait_avg_s == 120.0 and rows[0].wait_max_s == 180.0
    assert rows[1].wait_avg_s == rows[1].wait_max_s == 360.0
    assert store.history(NOW + 10 * MINUTE, 5 * MINUTE) == []
