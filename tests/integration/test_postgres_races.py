"""Writers side by side on PostgreSQL, made to meet exactly: one holds its transaction open (a
batch) while the other's operation waits for it, then the first commits. SQLite serialises
writers, so these cases cannot arise there; here each must end as if the two had run one
after the other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.support.daemons import wait_until
from ygg.store import NewTask, Outcome, open_store
from ygg.store.base import Store
from ygg.store.model import US

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

NOW = 1_700_000_000 * US


def waiting_for_a_lock(url: str) -> int:
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def meet(url: str, first: Callable[[Store], Any], second: Callable[[], Any]) -> Any:
    """Runs `first` inside a batch of store A, and while that batch is still open, `second` on
    another thread (store B's own operation), which must wait for A's locks; then A commits.
    Returns what `second` returned."""
    a = open_store(url, clock="caller")
    result: list[Any] = []
    errors: list[BaseException] = []
    try:

        def run_second() -> None:
            try:
                result.append(second())
            except BaseException as exc:
                errors.append(exc)

        with a.batch():
            first(a)
            thread = threading.Thread(target=run_second)
            thread.start()
            assert wait_until(lambda: waiting_for_a_lock(url) == 1, 10), "B never waited for A"
        thread.join(20)
        assert not thread.is_alive() and errors == []
        return result[0]
    finally:
        a.close()


def claimed(store: Store, task_id: int) -> int:
    (claim,) = store.claim(
        "p", [store.get(task_id).kind], 1, slots=10, owner=1, lease_us=US, now_us=NOW
    )
    assert claim.task_id == task_id
    return claim.token


def test_a_parent_that_finishes_while_a_child_is_being_attached_promotes_it(
    pg_url: str,
) -> None:
    b = open_store(pg_url, clock="caller")
    try:
        parent = b.enqueue(NewTask(title="parent", kind="p"), NOW)
        token = claimed(b, parent)
        children: list[int] = []

        def attach(a: Store) -> None:  # A: the child is inserted (waiting), not yet committed
            children.append(a.enqueue(NewTask(title="child", kind="c", depends_on=(parent,)), NOW))

        promoted = meet(pg_url, attach, lambda: b.complete(parent, token, Outcome(), NOW))
        assert b.get(children[0]).status == "queued"
        assert promoted == ["c"]
    finally:
        b.close()


def test_two_parents_finishing_at_once_promote_their_child(pg_url: str) -> None:
    b = open_store(pg_url, clock="caller")
    try:
        one = b.enqueue(NewTask(title="one", kind="one"), NOW)
        two = b.enqueue(NewTask(title="two", kind="two"), NOW)
        child = b.enqueue(NewTask(title="child", kind="c", depends_on=(one, two)), NOW)
        token_one, token_two = claimed(b, one), claimed(b, two)

        def finish_one(a: Store) -> None:  # A: `one` is done, not yet committed; `two` runs
            assert a.complete(one, token_one, Outcome(), NOW) == []

        promoted = meet(pg_url, finish_one, lambda: b.complete(two, token_two, Outcome(), NOW))
        assert b.get(child).status == "queued"
        assert promoted == ["c"]
    finally:
        b.close()


def test_a_parent_that_fails_while_a_child_is_being_attached_blocks_it(pg_url: str) -> None:
    b = open_store(pg_url, clock="caller")
    try:
        parent = b.enqueue(NewTask(title="parent", kind="p", max_attempts=1), NOW)
        token = claimed(b, parent)
        children: list[int] = []

        def attach(a: Store) -> None:
            children.append(a.enqueue(NewTask(title="child", kind="c", depends_on=(parent,)), NOW))

        status = meet(
            pg_url,
            attach,
            lambda: b.fail(parent, token, "boom", retry_at_us=None, charge=True, now_us=NOW),
        )
        assert status == "failed"
        assert b.get(children[0]).status == "blocked"
    finally:
        b.close()
