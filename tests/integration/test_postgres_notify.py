"""Wake-up hints on PostgreSQL: NOTIFY after an operation commits, in a transaction of its own,
and a listener that says when it (re)connects, since what was sent meanwhile is lost."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from tests.support.daemons import wait_until
from tests.support.pg import PgCluster
from ygg.store import NewTask, open_store
from ygg.store.model import US, now_us
from ygg.store.postgres.listen import APPLICATION, NotifyListener

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def listener(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("LISTEN ygg")
    return conn


def received(conn: psycopg.Connection[Any], timeout_s: float = 0.5) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=timeout_s)]


def test_a_submit_notifies_after_its_commit_and_a_rolled_back_one_not_at_all(
    pg_url: str,
) -> None:
    store = open_store(pg_url)
    listening = listener(pg_url)
    try:
        store.enqueue(NewTask(title="a", kind="k"), now_us())
        assert received(listening) == ["wake"]
        with store.batch():
            store.enqueue(NewTask(title="b", kind="k"), now_us())
            store.enqueue(NewTask(title="c", kind="k"), now_us())
            assert received(listening, 0.2) == []  # nothing before the commit
        assert received(listening) == ["wake"]  # once for the batch

        def changed_mind() -> None:
            with store.batch():
                store.enqueue(NewTask(title="d", kind="k"), now_us())
                raise RuntimeError("the caller changed its mind")

        with pytest.raises(RuntimeError):
            changed_mind()
        assert received(listening, 0.2) == []
        assert [t.title for t in store.list_tasks()] == ["a", "b", "c"]
    finally:
        listening.close()
        store.close()


def test_cancelling_a_running_task_tells_its_owner(pg_url: str) -> None:
    store = open_store(pg_url)
    listening = listener(pg_url)
    try:
        task = store.enqueue(NewTask(title="a", kind="k"), now_us())
        store.claim("p", ["k"], 1, slots=1, owner=1, lease_us=30 * US, now_us=now_us())
        received(listening)
        store.cancel(task, now_us())
        assert sorted(received(listening)) == [f"cancel {task}", "wake"]
    finally:
        listening.close()
        store.close()


def test_the_listener_delivers_hints_and_says_each_time_it_connects(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    payloads: list[str] = []
    connects = threading.Semaphore(0)
    hints = NotifyListener(pg_url, payloads.append, connects.release).start()
    store = open_store(pg_url)
    try:
        assert connects.acquire(timeout=10)
        store.enqueue(NewTask(title="a", kind="k"), now_us())
        assert wait_until(lambda: payloads == ["wake"], 10)
        dbname = pg_url.rsplit("/", 1)[1]
        ended = pg_cluster.terminate_backends(
            lambda b: b.datname == dbname and b.application_name == APPLICATION
        )
        assert ended == 1
        assert connects.acquire(timeout=20)  # back, and it says so: look at the queue now
        store.enqueue(NewTask(title="b", kind="k"), now_us())
        assert wait_until(lambda: payloads == ["wake", "wake"], 10)
    finally:
        store.close()
        hints.close()
