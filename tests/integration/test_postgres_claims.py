"""The PostgreSQL claim's walk of the ready index, one kind at a time: its order across kinds,
its limit, rows another transaction has locked, and the plan it gets on a deep queue; and
the completions that wake other daemons only when there are any."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from ygg.store import NewTask, Outcome, open_store
from ygg.store.completion import Completion
from ygg.store.model import US, now_us

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


# The claim runs on the server (`ygg.claim`), its statements on generic plans (made without the
# parameters' values): each must walk the ready index, and look the tasks it takes up by key.
# auto_explain shows the plans of the statements inside the function, as notices.
def _explained(conn: psycopg.Connection[Any], *, analyze: bool) -> list[dict[str, Any]]:
    """Every statement `conn` runs from now on has its plan (JSON) appended to the list."""
    plans: list[dict[str, Any]] = []

    def keep(notice: psycopg.errors.Diagnostic) -> None:
        text = notice.message_primary or ""
        if "plan:" in text:
            plans.append(json.loads(text.split("plan:", 1)[1]))

    conn.add_notice_handler(keep)
    conn.execute("LOAD 'auto_explain'")
    settings = {
        "log_min_duration": "0", "log_nested_statements": "on", "log_level": "notice",
        "log_format": "json", "log_analyze": "on" if analyze else "off",
    }  # fmt: skip
    for name, value in settings.items():
        conn.execute(f"SET auto_explain.{name} = {value}")
    return plans


def _claim_10(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Claims 10 tasks of three kinds for pool p (limit 10), then rolls it back."""
    with conn.transaction(force_rollback=True):
        return conn.execute(
            "SELECT * FROM ygg.claim('p', ARRAY['k1', 'k2', 'k3'], 10, %s, 1, 0, true, NULL)",
            (now_us(),),
        ).fetchall()


def _fill(url: str, done: int, queued: int) -> None:
    """`done` finished tasks, then `queued` ready ones, of 20 kinds and 5 priorities; pool p
    with a limit of 10 and its 10 slot rows."""
    open_store(url).close()  # the schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ygg.tasks (title, kind, priority, status, max_attempts, created_us) "
            "SELECT 't', 'k' || (g %% 20), g %% 5, CASE WHEN g <= %s THEN 'done' "
            "ELSE 'queued' END, 1, 0 FROM generate_series(1, %s) g",
            (done, done + queued),
        )
        conn.execute(
            "INSERT INTO ygg.pool_limits (pool, slot_limit, configured, source, set_us) "
            "VALUES ('p', 10, 10, 'test', 0)"
        )
        conn.execute(
            "INSERT INTO ygg.slots (pool, n, lim) SELECT 'p', g, 10 FROM generate_series(1, 10) g"
        )
        conn.execute("ANALYZE ygg.tasks")


@pytest.mark.parametrize("plan", ["custom", "generic"])
def test_on_a_deep_queue_the_claim_walks_the_ready_index_of_each_kind(
    pg_url: str, plan: str
) -> None:
    _fill(pg_url, 0, 50000)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        plans = _explained(conn, analyze=False)
        conn.execute(f"SET plan_cache_mode = force_{plan}_plan")
        assert len(_claim_10(conn)) == 10
    shown = json.dumps(plans)
    assert ("pool = $" in shown) == (plan == "generic")  # a custom plan has the values in it
    assert "tasks_ready" in shown
    assert "tasks_by_status" not in shown and "tasks_queued" not in shown


@pytest.mark.parametrize("walk", [False, True], ids=["per_kind", "past_locked_candidates"])
def test_a_generic_claim_looks_up_the_tasks_it_takes_by_key_past_a_long_history(
    pg_url: str, walk: bool
) -> None:
    """Joined to the candidates, the walk past other claims' locks got a generic plan that
    merged them with the primary key from the first task ever made: 100,182 rows read to
    take 10 here, 88 ms instead of 11 behind 300,000 done tasks. With `walk`, every candidate
    (the first 10 of each kind) is locked elsewhere, so the claim walks on past them."""
    _fill(pg_url, 100000, 50000)
    with psycopg.connect(pg_url, autocommit=True) as conn, psycopg.connect(pg_url) as locker:
        locked = locker.execute(
            "SELECT id FROM ygg.tasks WHERE id IN (SELECT c.id FROM unnest(ARRAY['k1', 'k2', "
            "'k3']) AS k(kind) CROSS JOIN LATERAL (SELECT id FROM ygg.tasks WHERE status = "
            "'queued' AND kind = k.kind ORDER BY priority, id LIMIT 10) AS c) AND %s FOR UPDATE",
            (walk,),
        ).fetchall()
        assert len(locked) == (30 if walk else 0)
        plans = _explained(conn, analyze=True)
        conn.execute("SET plan_cache_mode = force_generic_plan")
        taken = {row[4] for row in _claim_10(conn)}
    assert len(taken) == 10 and not taken & {row[0] for row in locked}
    read_by_key = [
        node["Actual Rows"] * node["Actual Loops"]
        for shown in plans
        for node in _nodes(shown["Plan"])
        if node.get("Index Name") == "tasks_pkey"
    ]
    assert read_by_key and max(read_by_key) <= 30  # 10 taken; per kind, 10 candidates each


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def test_the_claims_statements_run_on_generic_plans_from_the_first_claim(pg_url: str) -> None:
    """Left to choose, the server made a custom plan for every claim, as costly as running it;
    every write transaction on the database's clock asks for generic plans instead. (A
    function's statements would otherwise be planned afresh for their first five runs.)"""
    store = open_store(pg_url)  # the database's clock, as a daemon's store
    store.enqueue_many([NewTask(f"t{i}", "k") for i in range(10)], now_us())
    store.claim("p", ["k"], 1, slots=10, owner=1, lease_us=60 * US, now_us=now_us())  # its rows
    with store.read() as conn:
        plans = _explained(conn, analyze=False)
    for _ in range(3):
        assert (
            len(store.claim("p", ["k"], 1, slots=10, owner=1, lease_us=60 * US, now_us=now_us()))
            == 1
        )
    # The function's statements on the pool's rows: the free slots, the check for slots held
    # above the limit, the take. A custom plan would show the pool's name, not a parameter.
    on_pool = [json.dumps(p["Plan"]) for p in plans if "p_pool" in p["Query Text"]]
    assert len(on_pool) >= 3 * 3 and all("pool = $" in shown for shown in on_pool)
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
