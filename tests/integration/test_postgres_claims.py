"""The PostgreSQL claim's walk of the ready index, one kind at a time: its order across kinds,
its limit, rows another transaction has locked, and the plan it gets on a deep queue; and
the completions that wake other daemons only when there are any."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from ygg.store import NewTask, Outcome, open_store
from ygg.store.completion import Completion
from ygg.store.model import US, now_us
from ygg.store.postgres.claims import _ANY_KIND, _PER_KIND

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


# The daemon's claims run prepared, on generic plans (made without the parameters' values):
# each must walk the ready index, and look the tasks it takes up by key.
def _plan(conn: psycopg.Connection[Any], sql: str, plan: str, *, analyze: bool) -> Any:
    """The plan of `sql`, prepared, with the arguments of a claim of 10 tasks of three kinds,
    on the `plan` kind of plan: as text; with `analyze`, run (then rolled back), as JSON."""
    args = {
        "check": True, "pool": "p", "lim": 10, "kinds": ["k1", "k2", "k3"], "now": now_us(),
        "owner": 1, "lease": 0, "n": 10, "free": list(range(1, 11)),
    }  # fmt: skip
    named = re.compile(r"%\((\w+)\)s")  # psycopg's placeholders; PREPARE numbers them
    names = list(dict.fromkeys(named.findall(sql)))
    numbered = named.sub(lambda m: f"${names.index(m[1]) + 1}", sql)
    conn.execute("DEALLOCATE ALL")
    conn.execute(f"PREPARE take({', '.join(_TYPES[n] for n in names)}) AS {numbered}")
    conn.execute(f"SET plan_cache_mode = force_{plan}_plan")
    with conn.transaction(force_rollback=True):
        values = ", ".join(["%s"] * len(names))
        how = "ANALYZE, FORMAT JSON" if analyze else "FORMAT TEXT"
        rows = conn.execute(f"EXPLAIN ({how}) EXECUTE take({values})", [args[n] for n in names])
        shown = [r[0] for r in rows]
    return shown[0] if analyze else "\n".join(shown)


_TYPES = {
    "check": "boolean", "pool": "text", "lim": "integer", "kinds": "text[]", "now": "bigint",
    "owner": "bigint", "lease": "bigint", "n": "integer", "free": "integer[]",
}  # fmt: skip


def _fill(url: str, done: int, queued: int) -> None:
    """`done` finished tasks, then `queued` ready ones, of 20 kinds and 5 priorities."""
    open_store(url).close()  # the schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ygg.tasks (title, kind, priority, status, max_attempts, created_us) "
            "SELECT 't', 'k' || (g %% 20), g %% 5, CASE WHEN g <= %s THEN 'done' "
            "ELSE 'queued' END, 1, 0 FROM generate_series(1, %s) g",
            (done, done + queued),
        )
        conn.execute("ANALYZE ygg.tasks")


@pytest.mark.parametrize("plan", ["custom", "generic"])
def test_on_a_deep_queue_the_claim_walks_the_ready_index_of_each_kind(
    pg_url: str, plan: str
) -> None:
    _fill(pg_url, 0, 50000)
    with psycopg.connect(pg_url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        shown = _plan(conn, _PER_KIND, plan, analyze=False)
    assert ("pool = $" in shown) == (plan == "generic")  # a custom plan has the values in it
    assert "tasks_ready" in shown
    assert "tasks_by_status" not in shown and "tasks_queued" not in shown


@pytest.mark.parametrize("sql", [_PER_KIND, _ANY_KIND], ids=["per_kind", "any_kind"])
def test_a_generic_claim_looks_up_the_tasks_it_takes_by_key_past_a_long_history(
    pg_url: str, sql: str
) -> None:
    """Joined to the candidates, the walk past other claims' locks (any_kind) got a generic plan
    that merged them with the primary key from the first task ever made: 100,182 rows read to
    take 10 here, 88 ms instead of 11 behind 300,000 done tasks."""
    _fill(pg_url, 100000, 50000)
    with psycopg.connect(pg_url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        shown = _plan(conn, sql, "generic", analyze=True)
    read_by_key = [
        node["Actual Rows"] * node["Actual Loops"]
        for node in _nodes(shown[0]["Plan"])
        if node.get("Index Name") == "tasks_pkey"
    ]
    assert read_by_key and max(read_by_key) <= 30  # 10 taken; per kind, 10 candidates each


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def test_a_prepared_claim_runs_on_a_generic_plan_never_planned_afresh(pg_url: str) -> None:
    """Left to choose, the server made a custom plan for every claim, as costly as running it;
    every write transaction on the database's clock asks for the generic plan instead."""
    store = open_store(pg_url)  # the database's clock, as a daemon's store
    store.enqueue_many([NewTask(f"t{i}", "k") for i in range(10)], now_us())
    for _ in range(8):  # psycopg prepares a statement on its sixth run
        store.claim("p", ["k"], 1, slots=10, owner=1, lease_us=60 * US, now_us=now_us())
    with store.read() as conn:
        plans = conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%WITH over AS MATERIALIZED%'"
        ).fetchall()
    assert plans and all(generic >= 1 and custom == 0 for generic, custom in plans)
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
