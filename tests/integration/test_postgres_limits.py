"""Slot limits on PostgreSQL beyond the contract suite: slot rows made before limits were
stored, and a resize waiting for a claim that holds a slot row."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ygg.store import NewTask, Outcome, open_store
from ygg.store.model import US, now_us

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def test_slot_rows_from_before_stored_limits_take_the_first_claimers_slots(pg_url: str) -> None:
    """A queue upgraded from schema 1 has slot rows without a limit and no stored limit: the
    first claim stores its slots as the limit and gives every row its copy."""
    store = open_store(pg_url, clock="caller")
    ids = store.enqueue_many([NewTask(f"t{i}", "k") for i in range(6)], now_us())
    first = store.claim("p", ["k"], 3, slots=3, owner=1, lease_us=60 * US, now_us=now_us())
    assert [c.task_id for c in first] == ids[:3]
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as schema 1 left it
        conn.execute("UPDATE ygg.slots SET lim = NULL")
        conn.execute("DELETE FROM ygg.pool_limits")
    for claim in first[:2]:
        store.complete(claim.task_id, claim.token, Outcome(), now_us())
    again = store.claim("p", ["k"], 5, slots=2, owner=2, lease_us=60 * US, now_us=now_us())
    assert [c.task_id for c in again] == ids[3:4]  # 1 still runs: 2 in all
    assert store.pool_limits()["p"][:4] == ("p", 2, 2, "claim")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT DISTINCT lim FROM ygg.slots").fetchall() == [(2,)]
    store.close()


def test_a_resize_waits_for_a_claim_holding_a_slot_row(pg_url: str) -> None:
    """A claim in flight (its transaction still open) holds a slot row under the old limit:
    the resize commits only after it, so no claim under the new limit can miss it."""
    store = open_store(pg_url, clock="caller")
    store.enqueue_many([NewTask(f"t{i}", "k") for i in range(4)], now_us())
    store.set_pool_limit("p", 3, daemon_id=1, now_us=now_us())
    claimer = open_store(pg_url, clock="caller")
    order: list[str] = []
    with claimer.batch():  # the claim's transaction stays open until the batch ends
        held = claimer.claim("p", ["k"], 3, slots=3, owner=1, lease_us=60 * US, now_us=now_us())
        assert len(held) == 3

        def resize() -> None:
            store.set_pool_limit("p", 1, daemon_id=2, now_us=now_us())
            order.append("resized")

        thread = threading.Thread(target=resize)
        thread.start()
        time.sleep(0.1)  # well past a statement's time, within the resize's patience
        order.append("claim committing")
    thread.join(10)
    assert order == ["claim committing", "resized"]
    assert store.claim("p", ["k"], 3, slots=3, owner=2, lease_us=60 * US, now_us=now_us()) == []
    claimer.close()
    store.close()
