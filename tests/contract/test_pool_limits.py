"""Slot limits held by the store: one per pool, for every daemon on the queue.

What a daemon's file says is only what it states at start and reload (`set_pool_limit`);
claims obey the stored limit, whatever `slots` the claimer passes.
"""

from __future__ import annotations

import pytest

from ygg.errors import InvalidInput
from ygg.store import Store
from ygg.store.model import US, NewTask, Outcome, PoolLimit

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000 * US
LEASE = 30 * US


def fill(store: Store, n: int, kind: str = "k") -> list[int]:
    return store.enqueue_many([NewTask(f"t{i}", kind) for i in range(n)], NOW)


def claim(store: Store, limit: int, *, slots: int = 100, owner: int = 1) -> list[int]:
    claims = store.claim("p", ["k"], limit, slots=slots, owner=owner, lease_us=LEASE, now_us=NOW)
    return [c.task_id for c in claims]


def finish(store: Store, task_id: int) -> None:
    token = store.get(task_id).attempts  # one attempt each here: the token is 1
    assert store.complete(task_id, token, Outcome(), NOW) == []


def test_a_limit_is_stored_with_who_set_it_and_when(store: Store) -> None:
    assert store.pool_limits() == {}
    stored = store.set_pool_limit("p", 3, daemon_id=7, now_us=NOW, configured=3)
    assert stored == PoolLimit("p", 3, 3, "config", 7, NOW)
    assert store.pool_limits() == {"p": stored}
    # adaptive control moves the limit and keeps the configured slots (its ceiling)
    moved = store.set_pool_limit("p", 2, daemon_id=8, now_us=NOW + 1, source="adaptive")
    assert moved == PoolLimit("p", 2, 3, "adaptive", 8, NOW + 1)
    # without configured slots, a first limit is its own
    assert store.set_pool_limit("q", 5, daemon_id=None, now_us=NOW) == PoolLimit(
        "q", 5, 5, "config", None, NOW
    )
    assert list(store.pool_limits()) == ["p", "q"]


@pytest.mark.parametrize("bad", [0, -1, 2**31])
def test_a_limit_out_of_range_is_refused_and_nothing_stored(store: Store, bad: int) -> None:
    with pytest.raises(InvalidInput, match="limit of pool p"):
        store.set_pool_limit("p", bad, daemon_id=1, now_us=NOW)
    with pytest.raises(InvalidInput, match="configured slots of pool p"):
        store.set_pool_limit("p", 2, daemon_id=1, now_us=NOW, configured=bad)
    assert store.pool_limits() == {}


def test_claims_obey_the_stored_limit_not_the_callers_slots(store: Store) -> None:
    ids = fill(store, 6)
    store.set_pool_limit("p", 2, daemon_id=1, now_us=NOW)
    assert claim(store, 5, slots=100) == ids[:2]
    assert claim(store, 5, slots=100, owner=2) == []
    store.set_pool_limit("p", 4, daemon_id=2, now_us=NOW)  # a reload elsewhere raises it
    assert claim(store, 5, slots=1, owner=2) == ids[2:4]
    assert claim(store, 5, slots=100) == []


def test_a_first_claim_stores_the_claimers_slots(store: Store) -> None:
    ids = fill(store, 4)
    assert claim(store, 5, slots=2, owner=9) == ids[:2]
    limits = store.pool_limits()
    assert limits["p"]._replace(set_us=0) == PoolLimit("p", 2, 2, "claim", 9, 0)
    assert claim(store, 5, slots=4, owner=3) == []  # the stored limit, not these slots


def test_lowered_below_what_runs_nothing_starts_until_under_it(store: Store) -> None:
    """4 run, the limit drops to 1: running tasks finish; nothing starts until none runs;
    raised again, the room is there at once."""
    ids = fill(store, 10)
    store.set_pool_limit("p", 4, daemon_id=1, now_us=NOW)
    running = claim(store, 4)
    assert running == ids[:4]
    store.set_pool_limit("p", 1, daemon_id=1, now_us=NOW)
    for task_id in running[:3]:  # lowest slots first, then the highest last
        assert claim(store, 5) == []
        finish(store, task_id)
    assert claim(store, 5) == []  # one still runs: the pool is at its limit
    finish(store, running[3])
    assert claim(store, 5) == ids[4:5]
    assert claim(store, 5) == []
    store.set_pool_limit("p", 3, daemon_id=2, now_us=NOW)
    assert claim(store, 5, owner=2) == ids[5:7]
    assert store.pool_load({"p": ["k"]}) == {"p": (3, 3)}


def test_lowered_while_the_high_slots_run(store: Store) -> None:
    """Slots held above a lowered limit count against it as the low ones come free."""
    ids = fill(store, 8)
    store.set_pool_limit("p", 4, daemon_id=1, now_us=NOW)
    running = claim(store, 4)
    finish(store, running[0])
    finish(store, running[1])  # two run, holding the highest slots (3 and 4, on rows)
    store.set_pool_limit("p", 3, daemon_id=1, now_us=NOW)
    assert claim(store, 5) == ids[4:5]  # 2 + 1 = 3
    assert claim(store, 5) == []
    finish(store, running[3])
    assert claim(store, 5) == ids[5:6]
    assert store.pool_load({"p": ["k"]}) == {"p": (3, 2)}


def test_what_each_daemons_file_says_lives_and_dies_with_the_daemon(store: Store) -> None:
    one = store.register_daemon("skadi", 100, NOW, "@ygg-1", "async", NOW)
    two = store.register_daemon("fenrir", 200, NOW, "@ygg-2", "legacy", NOW)
    store.declare_slots(one, {"p": 2, "q": 1})
    store.declare_slots(two, {"p": 3})
    store.set_pool_limit("p", 3, daemon_id=two, now_us=NOW, configured=3)
    store.set_pool_limit("q", 1, daemon_id=one, now_us=NOW, configured=1)
    limits = store.pool_limits()
    assert limits["p"].files == {one: 2, two: 3}
    assert limits["p"].disagreeing() == [one]
    assert limits["q"].files == {one: 1}
    assert limits["q"].disagreeing() == []
    store.declare_slots(one, {"p": 3})  # a reload: replaces what it said before
    limits = store.pool_limits()
    assert limits["p"].files == {one: 3, two: 3}
    assert limits["q"].files == {}
    store.unregister_daemon(two)
    assert store.pool_limits()["p"].files == {one: 3}
    assert store.pool_limits()["p"].limit == 3  # the limit outlives the daemon that set it


def test_a_limit_set_in_a_batch_that_fails_is_undone(store: Store) -> None:
    store.set_pool_limit("p", 2, daemon_id=1, now_us=NOW)

    def failing_batch() -> None:
        with store.batch():
            store.set_pool_limit("p", 5, daemon_id=2, now_us=NOW)
            raise RuntimeError("the batch fails")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert store.pool_limits()["p"].limit == 2
