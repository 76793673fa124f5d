"""The PostgreSQL claim's walk of the ready index, one kind at a time: its order across kinds,
its limit, rows another transaction has locked, and the plan it gets on a deep queue; and
the completions that wake other daemons only when there are any."""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg
import pytest

from ygg.store import NewTask, Outcome, open_store
from ygg.store.completion import Completion
from ygg.store.model import US, now_us
from ygg.store.postgres.claims import _PER_KIND

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def test_a_claim_over_several_kinds_takes_the_most_urgent_in_order_and_no_more(
    pg_url: str,
) -> None:
    store = open_store(pg_url, clock="caller")
    others = [NewTask(f"o{i}", "other", priority=0) for i in range(50)]  # ahead, never taken
    mine = [NewTask(f"{kind}{i}", kind, priority=i % 3) for i in range(6) for kind in "ab"]
    store.enqueue_many(others, now_us())
    ids = store.enqueue_many(mine, now_us())
    want = sorted(zip([t.priority for t in mine], ids, strict=True))[:4]
    taken = store.claim(
        "p", ["a", "b", "a"], 4, slots=8, owner=1, lease_us=60 * US, now_us=now_us()
    )
    assert [(c.priority, c.task_id) for c in taken] == want
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM ygg.slots WHERE task_id IS NOT NULL").fetchone()
    assert row == (4,)
    store.close()


def test_a_claim_walks_past_ready_tasks_another_transaction_has_locked(pg_url: str) -> None:
    """The first two ready tasks are locked elsewhere: the per-kind candidates (as many as the
    claim wants) are all locked, and the claim still takes the next two."""
    store = open_store(pg_url, clock="caller")
    ids = store.enqueue_many([NewTask(f"t{i}", "k") for i in range(5)], now_us())
    with psycopg.connect(pg_url) as locker, locker.transaction():
        locker.execute("SELECT id FROM ygg.tasks WHERE id = ANY(%s) FOR UPDATE", (ids[:2],))
        taken = store.claim("p", ["k"], 2, slots=4, owner=1, lease_us=60 * US, now_us=now_us())
        assert [c.task_id for c in taken] == ids[2:4]
        with psycopg.connect(pg_url) as conn:
            held = conn.execute("SELECT n, task_id FROM ygg.slots WHERE task_id IS NOT NULL")
            assert sorted(held.fetchall()) == [(1, ids[2]), (2, ids[3])]
    store.close()


# The daemon's claims run prepared, and after five runs the server keeps a generic plan, made
# without the parameters' values: it must walk the ready index too.
@pytest.mark.parametrize("plan", ["custom", "generic"])
def test_on_a_deep_queue_the_claim_walks_the_ready_index_of_each_kind(
    pg_url: str, plan: str
) -> None:
    store = open_store(pg_url, clock="caller")
    store.enqueue_many([NewTask("x", "k0")], now_us())  # the schema exists
    with psycopg.connect(pg_url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute(
            "INSERT INTO ygg.tasks (title, kind, priority, status, max_attempts, created_us) "
            "SELECT 't', 'k' || (g % 20), g % 5, 'queued', 1, 0 FROM generate_series(1, 50000) g"
        )
        conn.execute("ANALYZE ygg.tasks")
        args = {
            "check": True, "pool": "p", "lim": 10, "kinds": ["k1", "k2", "k3"], "now": now_us(),
            "owner": 1, "lease": 0, "n": 10, "free": list(range(1, 11)),
        }  # fmt: skip
        named = re.compile(r"%\((\w+)\)s")  # psycopg's placeholders; PREPARE numbers them
        names = list(dict.fromkeys(named.findall(_PER_KIND)))
        numbered = named.sub(lambda m: f"${names.index(m[1]) + 1}", _PER_KIND)
        conn.execute(f"PREPARE take AS {numbered}")
        conn.execute(f"SET plan_cache_mode = force_{plan}_plan")
        with conn.transaction(force_rollback=True):
            values = ", ".join(["%s"] * len(names))
            rows = conn.execute(f"EXPLAIN EXECUTE take({values})", [args[n] for n in names])
            shown = "\n".join(r[0] for r in rows)
    pool_param = f"pool = ${names.index('pool') + 1}"
    assert (pool_param in shown) == (plan == "generic")  # a custom plan has the values in it
    assert "tasks_ready" in shown
    assert "tasks_by_status" not in shown and "tasks_queued" not in shown
    store.close()


def wakes_heard(url: str, work: Callable[[], object]) -> list[str]:
    """The notifications on channel ygg sent while `work` runs, up to a marker sent after it:
    notifications arrive in commit order, so whatever `work` sent comes before the marker."""
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute("LISTEN ygg")
        work()
        with psycopg.connect(url, autocommit=True) as marker:
            marker.execute("NOTIFY ygg, 'marker'")
        heard: list[str] = []
        for note in listener.notifies(timeout=20):
            if note.payload == "marker":
                return heard
            heard.append(note.payload)
    raise AssertionError("the marker never came")


@pytest.mark.parametrize("many", [False, True])
def test_a_completion_wakes_only_when_another_daemon_is_registered(pg_url: str, many: bool) -> None:
    """The daemon that completes its own attempts wakes itself; a WAKE is for other daemons."""
    store = open_store(pg_url, clock="caller")
    me = store.register_daemon("skadi", 100, now_us() - US, "@ygg-1", "async", now_us())
    store.enqueue_many([NewTask(f"t{i}", "k") for i in range(4)], now_us())

    def complete() -> None:
        claims = store.claim("p", ["k"], 2, slots=4, owner=me, lease_us=60 * US, now_us=now_us())
        if many:
            items = [Completion(c.task_id, c.token, Outcome("ok"), now_us()) for c in claims]
            assert store.complete_many(items) == [[], []]
        else:
            for c in claims:
                assert store.complete(c.task_id, c.token, Outcome("ok"), now_us()) == []

    assert wakes_heard(pg_url, complete) == []
    store.register_daemon("fenrir", 200, now_us() - US, "@ygg-2", "async", now_us())
    assert "wake" in wakes_heard(pg_url, complete)
    store.close()


def test_slot_rows_are_rewritten_in_place_so_their_index_does_not_grow(pg_url: str) -> None:
    """A slot row is written twice per task (taken, freed). Those writes are heap-only (HOT):
    after 2,000 tasks through a pool of 4 slots its index still fits one leaf page. Were the
    writes not HOT (say, with an index on task_id), each would add an entry to every index
    of the table, 4,000 of them."""
    store = open_store(pg_url, clock="caller")
    for round_no in range(500):
        store.enqueue_many([NewTask(f"t{round_no}-{i}", "k") for i in range(4)], now_us())
        claims = store.claim("p", ["k"], 4, slots=4, owner=1, lease_us=60 * US, now_us=now_us())
        assert len(claims) == 4
        items = [Completion(c.task_id, c.token, Outcome("ok"), now_us()) for c in claims]
        assert store.complete_many(items) == [[], [], [], []]
    store.close()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT count(*), sum(pg_relation_size(indexrelid)) FROM pg_index "
            "WHERE indrelid = 'ygg.slots'::regclass"
        ).fetchone()
    assert row == (1, 2 * 8192)  # the primary key: its meta page and one leaf
