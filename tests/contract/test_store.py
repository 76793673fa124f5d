"""The store's contract: what every engine must do, operation by operation.

Times are explicit (`now_us`), so nothing here sleeps or depends on the wall clock. Unless a
test says otherwise a task's kind is its title, so `run(store, id)` can claim exactly that task.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ygg.errors import EXIT_USAGE, InvalidInput, TaskNotFound
from ygg.store import Store
from ygg.store.completion import Completion
from ygg.store.model import US, Claim, NewTask, Outcome, Task

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000 * US
LEASE = 30 * US


# --- helpers ---------------------------------------------------------------------------------
def submit(
    store: Store,
    title: str,
    *,
    kind: str | None = None,
    priority: int = 2,
    after: Sequence[int] = (),
    max_attempts: int = 3,
    now: int = NOW,
) -> int:
    task = NewTask(
        title=title,
        kind=kind or title,
        priority=priority,
        depends_on=tuple(after),
        max_attempts=max_attempts,
    )
    return store.enqueue(task, now)


def claim(
    store: Store,
    kinds: Sequence[str],
    limit: int = 1,
    *,
    pool: str = "p",
    slots: int = 100,
    owner: int = 1,
    now: int = NOW,
) -> list[Claim]:
    return store.claim(pool, kinds, limit, slots=slots, owner=owner, lease_us=LEASE, now_us=now)


def run(store: Store, task_id: int, *, owner: int = 1, now: int = NOW) -> Claim:
    """Claims exactly `task_id` (the only ready task of its kind)."""
    claims = claim(store, [store.get(task_id).kind], owner=owner, now=now)
    assert [c.task_id for c in claims] == [task_id]
    return claims[0]


def finish(store: Store, task_id: int) -> list[str]:
    c = run(store, task_id)
    promoted = store.complete(c.task_id, c.token, Outcome(result="ok"), NOW)
    assert promoted is not None
    return promoted


def fail_for_good(store: Store, task_id: int) -> None:
    c = run(store, task_id)
    assert store.fail(c.task_id, c.token, "boom", retry_at_us=None, charge=True, now_us=NOW) == (
        "failed"
    )


def status(store: Store, task_id: int) -> str:
    return store.get(task_id).status


def statuses(store: Store, *task_ids: int) -> list[str]:
    return [status(store, t) for t in task_ids]


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


# --- submitting ------------------------------------------------------------------------------
def test_enqueue_without_dependencies_is_queued(store: Store) -> None:
    task_id = store.enqueue(
        NewTask(
            title="write a poem",
            kind="general",
            priority=1,
            prompt="about trees",
            params={"seconds": "0.5"},
            max_attempts=5,
            timeout_s=12.5,
            external_id="bd-1",
        ),
        NOW,
    )
    task = store.get(task_id)
    assert task == Task(
        id=task_id,
        title="write a poem",
        kind="general",
        priority=1,
        status="queued",
        pool=None,
        attempts=0,
        max_attempts=5,
        depends_on=(),
        params={"seconds": "0.5"},
        created_us=NOW,
        started_us=None,
        finished_us=None,
        result=None,
        error=None,
        external_id="bd-1",
        prompt="about trees",
        timeout_s=12.5,
    )
    assert task.to_json()["created_at"] == "2023-11-14T22:13:20.000000Z"


def test_ids_increase(store: Store) -> None:
    ids = [submit(store, f"t{i}") for i in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_enqueue_with_unfinished_dependency_is_waiting(store: Store) -> None:
    a = submit(store, "a")
    b = submit(store, "b")
    run(store, b)
    c = submit(store, "c", after=[a, b, a])  # a queued, b running; duplicates collapse
    assert status(store, c) == "waiting"
    assert store.get(c).depends_on == (a, b)


def test_enqueue_with_finished_dependencies_is_queued(store: Store) -> None:
    a = submit(store, "a")
    finish(store, a)
    b = submit(store, "b", after=[a])
    assert status(store, b) == "queued"


@pytest.mark.parametrize("how", ["failed", "cancelled", "blocked"])
def test_enqueue_with_failed_dependency_is_blocked(store: Store, how: str) -> None:
    a = submit(store, "a")
    other = submit(store, "other")
    bad = submit(store, "bad", after=[a]) if how == "blocked" else a
    if how in ("failed", "blocked"):
        fail_for_good(store, a)
    else:
        store.cancel(a, NOW)
    assert status(store, bad) == how
    b = submit(store, "b", after=[other, bad], now=NOW + 5)
    task = store.get(b)
    assert task.status == "blocked"
    assert task.finished_us == NOW + 5
    assert task.error


def test_enqueue_many_stores_all_in_order_with_their_dependencies(store: Store) -> None:
    first = submit(store, "first")
    done = submit(store, "done")
    finish(store, done)
    batch = [
        NewTask(title="a", kind="k"),
        NewTask(title="b", kind="k", priority=0),
        NewTask(title="after first", kind="k", depends_on=(first,)),
        NewTask(title="after done", kind="k", depends_on=(done,)),
        NewTask(title="c", kind="k", params={"seconds": "1"}),
    ]
    ids = store.enqueue_many(batch, NOW)
    assert ids == list(range(done + 1, done + 6))
    assert [store.get(i).title for i in ids] == [t.title for t in batch]
    assert statuses(store, *ids) == ["queued", "queued", "waiting", "queued", "queued"]
    assert store.get(ids[4]).params == {"seconds": "1"}
    assert store.enqueue_many([], NOW) == []
    assert submit(store, "next") == ids[-1] + 1


def test_enqueue_many_is_all_or_nothing(store: Store) -> None:
    from ygg.errors import BatchItemError

    first = submit(store, "first")
    before = store.list_tasks()
    batch = [NewTask(title=f"t{i}", kind="k") for i in range(50)]
    batch.insert(30, NewTask(title="orphan", kind="k", depends_on=(first + 999,)))
    with pytest.raises(BatchItemError) as refused:
        store.enqueue_many(batch, NOW)
    assert refused.value.index == 30
    assert str(first + 999) in refused.value.message
    assert store.list_tasks() == before
    assert submit(store, "next") == first + 1  # nothing of the batch took an id for good


def test_depending_on_a_missing_task_raises_and_writes_nothing(store: Store) -> None:
    a = submit(store, "a")
    before = (store.counts(), store.list_tasks())
    with pytest.raises(TaskNotFound) as caught:
        submit(store, "b", after=[a, a + 1000])
    assert caught.value.exit_code == EXIT_USAGE == 2
    assert str(a + 1000) in str(caught.value)
    assert (store.counts(), store.list_tasks()) == before
    # nothing half-written: the next task gets the next id and depends on nothing stale
    c = submit(store, "c")
    assert c == a + 1
    assert store.get(c).depends_on == ()


# --- claiming --------------------------------------------------------------------------------
def test_claim_takes_priority_then_fifo(store: Store) -> None:
    order = [(4, "p4"), (1, "p1-first"), (0, "p0-first"), (1, "p1-second"), (0, "p0-second")]
    ids = {title: submit(store, title, kind="k", priority=p) for p, title in order}
    taken = [c.task_id for _ in ids for c in claim(store, ["k"])]
    assert taken == [ids[t] for t in ("p0-first", "p0-second", "p1-first", "p1-second", "p4")]
    assert claim(store, ["k"]) == []


def test_claim_batch_is_in_priority_order_across_kinds(store: Store) -> None:
    a = [submit(store, f"a{i}", kind="a", priority=3) for i in range(3)]
    b = [submit(store, f"b{i}", kind="b", priority=1) for i in range(3)]
    c = [submit(store, f"c{i}", kind="c", priority=0) for i in range(2)]
    claims = claim(store, ["a", "b", "c"], limit=6)
    assert [x.task_id for x in claims] == [*c, *b, a[0]]
    assert [x.priority for x in claims] == [0, 0, 1, 1, 1, 3]


def test_claim_only_takes_kinds_the_pool_serves(store: Store) -> None:
    ids = {kind: submit(store, kind) for kind in ("a", "b", "c")}
    assert claim(store, []) == []
    claims = claim(store, ["a", "c", "zzz"], limit=10)
    assert sorted(x.task_id for x in claims) == [ids["a"], ids["c"]]
    assert status(store, ids["b"]) == "queued"


def test_claim_never_exceeds_slots_across_owners(store: Store) -> None:
    ids = [submit(store, f"t{i}", kind="k") for i in range(6)]
    first = claim(store, ["k"], limit=2, slots=3, owner=1)
    second = claim(store, ["k"], limit=5, slots=3, owner=2)
    assert [x.task_id for x in first] == ids[:2]
    assert [x.task_id for x in second] == ids[2:3]
    assert claim(store, ["k"], limit=5, slots=3, owner=3) == []
    assert claim(store, ["k"], limit=5, slots=3, owner=1) == []
    # the slots are per pool: another pool serving the same kind has its own
    assert [x.task_id for x in claim(store, ["k"], pool="q", slots=1, owner=2)] == ids[3:4]
    # a finished task frees its slot
    assert store.complete(first[0].task_id, first[0].token, Outcome(), NOW) == []
    assert [x.task_id for x in claim(store, ["k"], limit=5, slots=3, owner=3)] == ids[4:5]
    assert store.pool_load({"p": ["k"], "q": ["k"]}) == {"p": (3, 1), "q": (1, 1)}


def test_lowering_slots_counts_what_still_runs(store: Store) -> None:
    """A pool's limit lowered from 3 to 2 (a reload) while 3 run: nothing more starts until
    fewer than 2 run, whichever of them finish first. The claimers' own `slots` count for
    nothing once the store holds a limit."""
    ids = [submit(store, f"t{i}", kind="k") for i in range(6)]
    first = claim(store, ["k"], limit=3, slots=3)
    assert [c.task_id for c in first] == ids[:3]
    store.set_pool_limit("p", 2, daemon_id=None, now_us=NOW)
    assert claim(store, ["k"], limit=5, slots=3) == []
    done = first[0]  # the one holding the lowest slot
    assert store.complete(done.task_id, done.token, Outcome(), NOW) == []
    assert claim(store, ["k"], limit=5, slots=3) == []  # still two running
    last = first[2]
    assert store.complete(last.task_id, last.token, Outcome(), NOW) == []
    assert [c.task_id for c in claim(store, ["k"], limit=5, slots=3)] == ids[3:4]
    assert claim(store, ["k"], limit=5, slots=3) == []
    assert store.pool_load({"p": ["k"]}) == {"p": (2, 2)}


def test_claim_respects_retry_backoff(store: Store) -> None:
    a = submit(store, "a")
    c = run(store, a)
    assert store.fail(a, c.token, "flaky", retry_at_us=NOW + 10 * US, charge=True, now_us=NOW) == (
        "queued"
    )
    assert store.has_pending(["a"])
    assert claim(store, ["a"], now=NOW + 10 * US - 1) == []
    again = claim(store, ["a"], now=NOW + 10 * US)
    assert [x.task_id for x in again] == [a]
    assert store.get(a).run_after_us is None


def test_claim_backoff_does_not_hold_up_other_tasks(store: Store) -> None:
    a = submit(store, "a", kind="k", priority=0)
    b = submit(store, "b", kind="k", priority=4)
    c = run(store, a)
    store.fail(a, c.token, "flaky", retry_at_us=NOW + US, charge=True, now_us=NOW)
    assert [x.task_id for x in claim(store, ["k"], limit=5)] == [b]


def test_claim_records_the_attempt(store: Store) -> None:
    task_id = store.enqueue(
        NewTask(
            title="t",
            kind="k",
            priority=3,
            prompt="hi",
            params={"x": "1"},
            max_attempts=4,
            timeout_s=9.0,
        ),
        NOW,
    )
    first = run(store, task_id, owner=7, now=NOW + 1)
    assert first == Claim(
        task_id=task_id,
        token=first.token,
        kind="k",
        priority=3,
        title="t",
        prompt="hi",
        params={"x": "1"},
        attempt=1,
        max_attempts=4,
        timeout_s=9.0,
        created_us=NOW,
    )
    task = store.get(task_id)
    assert (task.status, task.pool, task.attempts, task.started_us) == ("running", "p", 1, NOW + 1)

    store.fail(task_id, first.token, "again", retry_at_us=NOW, charge=True, now_us=NOW + 2)
    second = claim(store, ["k"], pool="other", owner=8, now=NOW + 3)[0]
    assert second.attempt == 2
    assert second.token != first.token
    task = store.get(task_id)
    assert (task.status, task.pool, task.attempts, task.started_us) == (
        "running",
        "other",
        2,
        NOW + 3,
    )


# --- outcomes --------------------------------------------------------------------------------
def test_complete_records_the_result(store: Store) -> None:
    a = submit(store, "a")
    c = run(store, a)
    assert store.complete(a, c.token, Outcome("42", tokens_in=3, tokens_out=5), NOW + 9) == []
    task = store.get(a)
    assert (task.status, task.result, task.error, task.finished_us) == ("done", "42", None, NOW + 9)
    assert (task.tokens_in, task.tokens_out, task.attempts) == (3, 5, 1)
    assert store.renew(1, [a], NOW + LEASE, NOW).held == set()


def test_complete_records_usage_and_speed(store: Store) -> None:
    timed, untimed, absurd = (submit(store, name) for name in ("timed", "untimed", "absurd"))
    outcome = Outcome("x", tokens_in=7, tokens_out=40, first_token_s=0.125, generation_s=0.5)
    assert store.complete(timed, run(store, timed).token, outcome, NOW + 9) == []
    task = store.get(timed)
    assert (task.first_token_s, task.generation_s, task.tokens_per_s) == (0.125, 0.5, 80.0)
    json_task = task.to_json()
    assert (json_task["first_token_s"], json_task["tokens_per_s"]) == (0.125, 80.0)
    # A host that did not stream (or did not count) leaves them unknown, not zero.
    assert store.complete(untimed, run(store, untimed).token, Outcome("y", 1, 2), NOW + 9) == []
    task = store.get(untimed)
    assert (task.first_token_s, task.generation_s, task.tokens_per_s) == (None, None, None)
    nonsense = Outcome("z", 1, 2, first_token_s=float("nan"), generation_s=-1.0)
    assert store.complete(absurd, run(store, absurd).token, nonsense, NOW + 9) == []
    assert store.get(absurd)[-2:] == (None, None)
    assert [t.first_token_s for t in store.list_tasks(status="done")].count(0.125) == 1


def test_complete_promotes_dependents_whose_last_dependency_it_was(store: Store) -> None:
    a = submit(store, "a")
    b = submit(store, "b")
    both = submit(store, "both", kind="kb", after=[a, b])
    only_a = submit(store, "only_a", kind="ka", after=[a])
    grandchild = submit(store, "grandchild", after=[only_a])
    assert statuses(store, both, only_a, grandchild) == ["waiting"] * 3

    assert finish(store, a) == ["ka"]
    assert statuses(store, both, only_a, grandchild) == ["waiting", "queued", "waiting"]
    assert finish(store, b) == ["kb"]
    assert statuses(store, both, only_a, grandchild) == ["queued", "queued", "waiting"]
    assert finish(store, only_a) == ["grandchild"]
    assert status(store, grandchild) == "queued"


def test_complete_many_records_each_as_complete_would(store: Store) -> None:
    a, b, stale = submit(store, "a"), submit(store, "b"), submit(store, "stale")
    after_b = submit(store, "after b", kind="kb", after=[b])
    after_both = submit(store, "after both", kind="kab", after=[a, b])
    ca, cb, cs = run(store, a), run(store, b), run(store, stale)
    items = [
        Completion(b, cb.token, Outcome("B", 1, 2, first_token_s=0.25, generation_s=1.5), NOW + 7),
        Completion(stale, cs.token + 1, Outcome("late"), NOW + 8),
        Completion(a, ca.token, Outcome("A"), NOW + 9),
    ]
    promoted, *rest = store.complete_many(items)
    assert (sorted(promoted or []), rest) == (["kab", "kb"], [None, []])
    task = store.get(b)
    assert (task.status, task.result, task.tokens_in, task.tokens_out, task.finished_us) == (
        "done", "B", 1, 2, NOW + 7,
    )  # fmt: skip
    assert (task.first_token_s, task.generation_s) == (0.25, 1.5)
    assert (store.get(a).status, store.get(a).finished_us) == ("done", NOW + 9)
    assert store.get(stale).status == "running"
    assert statuses(store, after_b, after_both) == ["queued", "queued"]
    assert store.renew(1, [a, b, stale], NOW + LEASE, NOW).held == {stale}
    assert store.complete_many([Completion(a, ca.token, Outcome("again"), NOW)]) == [None]


# complete_many sends its batch to PostgreSQL as one JSON document: text JSON escapes (or
# another encoding would quote) must come back as it was, and what no engine keeps (NUL, a
# lone surrogate) as U+FFFD.
def test_complete_many_keeps_every_character_of_the_results(store: Store) -> None:
    texts = [
        '"quoted" \\back\\slash\n\ttab \u2028 ünï 🙂 {"json": [1]}, {a,b}',
        "nul\0 half\ud83d",
        "",
        "NULL",
        "  ",
    ]
    ids = [submit(store, f"t{i}") for i in range(len(texts) + 1)]
    claims = [run(store, task_id) for task_id in ids]
    items = [
        Completion(c.task_id, c.token, Outcome(text), NOW + 1)
        for c, text in zip(claims, [*texts, None], strict=True)
    ]
    assert store.complete_many(items) == [[]] * len(items)
    results = [store.get(task_id).result for task_id in ids]
    assert results == [texts[0], "nul\ufffd half\ufffd", "", "NULL", "  ", None]


def test_complete_with_a_wrong_token_is_refused(store: Store) -> None:
    a = submit(store, "a")
    c = run(store, a)
    before = store.get(a)
    assert store.complete(a, c.token + 1, Outcome("x"), NOW) is None
    assert store.complete(a + 1, c.token, Outcome("x"), NOW) is None
    assert store.get(a) == before


def test_a_stale_owner_cannot_write_after_its_task_was_requeued_and_claimed_again(
    store: Store,
) -> None:
    a = submit(store, "a")
    dependent = submit(store, "dependent", after=[a])
    old = run(store, a, owner=1)
    assert store.reap(NOW + LEASE + 1, alive_owners=set()) == [(a, "queued", 1)]
    assert store.complete(a, old.token, Outcome("late"), NOW) is None  # queued: nobody owns it
    new = run(store, a, owner=2, now=NOW + LEASE + 2)
    assert new.token != old.token
    before = [store.get(a), store.get(dependent)]

    assert store.complete(a, old.token, Outcome("late"), NOW) is None
    assert store.fail(a, old.token, "late", retry_at_us=None, charge=True, now_us=NOW) is None
    assert store.fail(a, old.token, "late", retry_at_us=NOW, charge=False, now_us=NOW) is None
    assert store.release(a, old.token, block=False, now_us=NOW) is False
    assert store.release(a, old.token, block=True, now_us=NOW) is False
    assert [store.get(a), store.get(dependent)] == before
    assert store.renew(1, [a], NOW + 10 * LEASE, NOW).held == set()

    assert store.complete(a, new.token, Outcome("ok"), NOW) == ["dependent"]
    assert store.get(a).result == "ok"


def test_fail_with_retry_requeues_with_backoff_and_error(store: Store) -> None:
    a = submit(store, "a", max_attempts=2)
    c = run(store, a)
    assert store.fail(a, c.token, "503", retry_at_us=NOW + 7, charge=True, now_us=NOW) == "queued"
    task = store.get(a)
    assert (task.status, task.attempts, task.error, task.run_after_us) == (
        "queued",
        1,
        "503",
        NOW + 7,
    )
    assert task.finished_us is None
    assert task.to_json()["retry_at"] is not None


def test_fail_without_budget_fails_and_blocks_dependents_transitively(store: Store) -> None:
    a = submit(store, "a", max_attempts=2)
    b = submit(store, "b", after=[a])
    c = submit(store, "c", after=[b])
    unrelated = submit(store, "unrelated")
    first = run(store, a)
    store.fail(a, first.token, "one", retry_at_us=NOW, charge=True, now_us=NOW)
    second = run(store, a)
    assert store.fail(a, second.token, "two", retry_at_us=NOW, charge=True, now_us=NOW + 3) == (
        "failed"
    )
    task = store.get(a)
    assert (task.status, task.attempts, task.error, task.finished_us) == (
        "failed",
        2,
        "two",
        NOW + 3,
    )
    assert statuses(store, b, c, unrelated) == ["blocked", "blocked", "queued"]
    assert store.get(b).finished_us == store.get(c).finished_us == NOW + 3
    assert store.get(b).error and store.get(c).error


def test_fail_that_is_not_retryable_fails_at_once(store: Store) -> None:
    a = submit(store, "a", max_attempts=3)
    c = run(store, a)
    assert store.fail(a, c.token, "bad input", retry_at_us=None, charge=True, now_us=NOW) == (
        "failed"
    )
    assert store.get(a).attempts == 1


def test_fail_without_charge_refunds_the_attempt(store: Store) -> None:
    a = submit(store, "a", max_attempts=1)
    for _ in range(3):  # an unreachable host never spends the only attempt
        c = run(store, a)
        assert c.attempt == 1
        assert store.fail(a, c.token, "refused", retry_at_us=NOW, charge=False, now_us=NOW) == (
            "queued"
        )
        assert store.get(a).attempts == 0
    c = run(store, a)
    assert store.fail(a, c.token, "real", retry_at_us=NOW, charge=True, now_us=NOW) == "failed"
    assert store.get(a).attempts == 1


def test_release_gives_the_attempt_back(store: Store) -> None:
    a = submit(store, "a")
    b = submit(store, "b")
    after_b = submit(store, "after_b", after=[b])
    ca, cb = run(store, a), run(store, b)
    assert store.release(a, ca.token, block=False, now_us=NOW) is True
    assert (status(store, a), store.get(a).attempts) == ("queued", 0)
    assert store.release(b, cb.token, block=True, now_us=NOW) is True
    assert statuses(store, b, after_b) == ["blocked", "blocked"]


# --- operator actions ------------------------------------------------------------------------
def test_cancel_queued_and_waiting(store: Store) -> None:
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    c = submit(store, "c", after=[b])
    assert store.cancel(b, NOW + 1) == ("waiting", None)
    assert statuses(store, a, b, c) == ["queued", "cancelled", "blocked"]
    assert store.get(b).finished_us == NOW + 1
    d = submit(store, "d", after=[a])
    assert store.cancel(a, NOW) == ("queued", None)
    assert statuses(store, a, d) == ["cancelled", "blocked"]
    assert claim(store, ["a", "b", "c", "d"], limit=10) == []


def test_cancel_running_returns_the_owner(store: Store) -> None:
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    c = run(store, a, owner=42)
    assert store.cancel(a, NOW) == ("running", 42)
    assert statuses(store, a, b) == ["cancelled", "blocked"]
    # the owner's late outcome is not recorded
    assert store.complete(a, c.token, Outcome("late"), NOW) is None
    assert store.fail(a, c.token, "late", retry_at_us=NOW, charge=True, now_us=NOW) is None
    assert store.release(a, c.token, block=False, now_us=NOW) is False
    assert status(store, a) == "cancelled"
    assert store.pool_load({"p": ["a"]}) == {"p": (0, 0)}


@pytest.mark.parametrize("final", ["done", "failed", "cancelled", "blocked"])
def test_cancel_of_a_finished_task_is_invalid(store: Store, final: str) -> None:
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    target = b if final == "blocked" else a
    if final == "done":
        finish(store, a)
    elif final == "cancelled":
        store.cancel(a, NOW)
    else:
        fail_for_good(store, a)
    before = store.get(target)
    with pytest.raises(InvalidInput) as caught:
        store.cancel(target, NOW + 1)
    assert caught.value.exit_code == 2
    assert store.get(target) == before


def test_cancel_or_retry_of_a_missing_task(store: Store) -> None:
    with pytest.raises(TaskNotFound):
        store.cancel(99, NOW)
    with pytest.raises(TaskNotFound):
        store.retry(99, NOW)
    with pytest.raises(TaskNotFound):
        store.get(99)


def test_retry_of_failed_requeues_and_unblocks_dependents(store: Store) -> None:
    a = submit(store, "a", max_attempts=1)
    x = submit(store, "x", max_attempts=1)
    b = submit(store, "b", after=[a])
    c = submit(store, "c", after=[b])
    d = submit(store, "d", after=[a, x])  # also depends on another failed task
    e = submit(store, "e", after=[c, b])  # reached twice through the chain
    fail_for_good(store, x)
    fail_for_good(store, a)
    assert statuses(store, b, c, d, e) == ["blocked"] * 4

    assert store.retry(a, NOW + 5) == "queued"
    task = store.get(a)
    assert (task.status, task.attempts, task.error, task.result) == ("queued", 0, None, None)
    assert (task.pool, task.started_us, task.finished_us, task.run_after_us) == (
        None,
        None,
        None,
        None,
    )
    assert statuses(store, b, c, d, e) == ["waiting", "waiting", "blocked", "waiting"]
    assert store.get(b).finished_us is None and store.get(b).error is None

    assert store.retry(x, NOW) == "queued"
    assert status(store, d) == "waiting"
    # and the chain runs to the end
    assert finish(store, a) == ["b"]
    assert finish(store, b) == ["c"]
    assert finish(store, c) == ["e"]
    assert finish(store, x) == ["d"]


def test_retry_of_cancelled_and_of_a_task_with_pending_dependencies(store: Store) -> None:
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    store.cancel(b, NOW)
    assert store.retry(b, NOW) == "waiting"
    store.cancel(a, NOW)
    assert status(store, b) == "blocked"
    assert store.retry(a, NOW) == "queued"
    assert status(store, b) == "waiting"


def test_retry_of_a_task_whose_own_dependency_failed_is_invalid(store: Store) -> None:
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    fail_for_good(store, a)
    before = store.get(b)
    with pytest.raises(InvalidInput):
        store.retry(b, NOW)
    assert store.get(b) == before


@pytest.mark.parametrize("current", ["queued", "waiting", "running", "done"])
def test_retry_of_an_unfinished_or_done_task_is_invalid(store: Store, current: str) -> None:
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    target = b if current == "waiting" else a
    if current == "running":
        run(store, a)
    elif current == "done":
        finish(store, a)
    before = store.get(target)
    with pytest.raises(InvalidInput):
        store.retry(target, NOW)
    assert store.get(target) == before


# --- leases ----------------------------------------------------------------------------------
def test_reap_returns_dead_owners_tasks(store: Store) -> None:
    dead = submit(store, "dead", max_attempts=3)
    alive = submit(store, "alive")
    exhausted = submit(store, "exhausted", max_attempts=1)
    downstream = submit(store, "downstream", after=[exhausted])
    fresh = submit(store, "fresh")
    run(store, dead, owner=1)
    run(store, alive, owner=2)
    run(store, exhausted, owner=1)
    run(store, fresh, owner=1, now=NOW + LEASE)  # its lease has not expired yet

    now = NOW + LEASE + 1
    changed = store.reap(now, alive_owners={2})
    assert sorted(changed) == sorted([(dead, "queued", 1), (exhausted, "failed", 1)])
    t = store.get(dead)
    assert (t.status, t.attempts, t.pool) == ("queued", 1, "p")
    assert t.error and "interrupted" in t.error
    assert status(store, alive) == "running"
    assert status(store, fresh) == "running"
    t = store.get(exhausted)
    assert (t.status, t.attempts, t.finished_us) == ("failed", 1, now)
    assert status(store, downstream) == "blocked"
    assert store.reap(now, alive_owners={2}) == []

    # the interrupted attempt was charged: the next claim is attempt 2
    assert run(store, dead, owner=3, now=now).attempt == 2


def test_a_dead_owner_loses_its_tasks_before_the_lease_ends(store: Store) -> None:
    mine, theirs = submit(store, "mine"), submit(store, "theirs")
    run(store, mine, owner=1)
    run(store, theirs, owner=2)
    # Owner 2's process is known to be gone (same machine): no need to wait out its lease.
    assert store.reap(NOW + 1, alive_owners={1}, dead_owners=[2]) == [(theirs, "queued", 1)]
    assert statuses(store, mine, theirs) == ["running", "queued"]


def test_renew_extends_only_the_owners_leases(store: Store) -> None:
    a, b, c, d = (submit(store, t) for t in "abcd")
    run(store, a, owner=1)
    run(store, b, owner=1)
    run(store, c, owner=2)
    cd = run(store, d, owner=1)
    store.complete(d, cd.token, Outcome(), NOW)
    assert store.renew(1, [a, b, d], NOW + 3 * LEASE, NOW + LEASE).held == {a, b}
    changed = store.reap(NOW + 2 * LEASE, alive_owners=set())
    assert changed == [(c, "queued", 1)]
    assert statuses(store, a, b) == ["running", "running"]

    store.cancel(a, NOW)
    assert store.renew(1, [a, b], NOW + 4 * LEASE, NOW).held == {b}
    assert store.renew(3, [c], NOW + 4 * LEASE, NOW).held == set()


def test_renew_takes_back_what_the_owner_holds_without_an_attempt(store: Store) -> None:
    live, orphan = submit(store, "live"), submit(store, "orphan")
    spent = submit(store, "spent", max_attempts=1)
    downstream = submit(store, "downstream", after=[spent])
    for task_id in (live, orphan, spent):
        run(store, task_id, owner=1)
    # Within the lease, a row without an attempt is left alone: its outcome may still come.
    renewal = store.renew(1, [live], NOW + 2 * LEASE, NOW + LEASE // 2)
    assert (renewal.held, renewal.orphans) == ({live}, [])
    # Once its lease has run out, it is taken back (charged, as a crash would be).
    renewal = store.renew(1, [live], NOW + 3 * LEASE, NOW + LEASE + 1)
    assert renewal.held == {live}
    assert sorted(renewal.orphans) == sorted([(orphan, "queued", 1), (spent, "failed", 1)])
    assert statuses(store, live, orphan, spent, downstream) == [
        "running",
        "queued",
        "failed",
        "blocked",
    ]
    assert store.renew(1, [live], NOW + 4 * LEASE, NOW + 2 * LEASE).orphans == []


def test_an_upsert_that_would_close_a_dependency_cycle_is_refused(store: Store) -> None:
    from ygg.store.model import Upsert

    def item(ref: str, *after: str) -> Upsert:
        return Upsert(NewTask(title=ref, kind="k", external_id=ref), after=after)

    store.upsert_external([item("A"), item("B", "A"), item("C", "B")], NOW)
    before = store.list_tasks()
    for closing in ([item("A", "C")], [item("A", "A")], [item("B", "C")]):
        with pytest.raises(InvalidInput, match="cycle"):
            store.upsert_external([item("D"), *closing], NOW)
        assert store.list_tasks() == before  # all or nothing: D was not kept either
    # An edge that closes no cycle is still taken.
    store.upsert_external([item("C", "A", "B")], NOW)
    assert store.list_tasks()[2].depends_on == (1, 2)


# --- reading ---------------------------------------------------------------------------------
def test_list_tasks_order_filters_and_limit(store: Store) -> None:
    a = submit(store, "a", kind="x", priority=3)
    b = submit(store, "b", kind="y", priority=0)
    c = submit(store, "c", kind="x", priority=0)
    d = submit(store, "d", kind="y", priority=3, after=[a])
    e = submit(store, "e", kind="x", priority=1)
    run_claims = claim(store, ["y"])
    assert [x.task_id for x in run_claims] == [b]

    def ids(tasks: list[Task]) -> list[int]:
        return [t.id for t in tasks]

    assert ids(store.list_tasks()) == [b, c, e, a, d]
    assert ids(store.list_tasks(limit=2)) == [b, c]
    assert ids(store.list_tasks(kind="x")) == [c, e, a]
    assert ids(store.list_tasks(status="queued")) == [c, e, a]
    assert ids(store.list_tasks(status="queued", kind="x", limit=1)) == [c]
    assert ids(store.list_tasks(status="running")) == [b]
    assert ids(store.list_tasks(status="waiting", kind="y")) == [d]
    assert ids(store.list_tasks(status="done")) == []
    assert store.list_tasks()[4].depends_on == (a,)


def test_counts(store: Store) -> None:
    assert nonzero(store.counts()) == {}
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    submit(store, "c")
    d = submit(store, "d")
    e = submit(store, "e")
    run(store, d)
    finish(store, e)
    store.cancel(b, NOW)
    assert nonzero(store.counts()) == {"queued": 2, "running": 1, "done": 1, "cancelled": 1}


def test_pool_load(store: Store) -> None:
    for kind, n in (("a", 3), ("b", 2), ("c", 1)):
        for i in range(n):
            submit(store, f"{kind}{i}", kind=kind)
    claim(store, ["a"], limit=2, pool="p")
    claim(store, ["c"], pool="elsewhere")
    load = store.pool_load({"p": ["a", "b"], "q": ["c"], "idle": []})
    assert load == {"p": (2, 3), "q": (0, 0), "idle": (0, 0)}


def test_has_pending(store: Store) -> None:
    assert not store.has_pending(["a"])
    assert not store.has_pending([])
    a = submit(store, "a")
    b = submit(store, "b", after=[a])
    assert store.has_pending(["a"])
    assert not store.has_pending(["b"])  # waiting is not pending: it cannot run yet
    assert not store.has_pending([])
    c = run(store, a)
    assert store.has_pending([])  # something is running, whatever its kind
    assert store.fail(a, c.token, "x", retry_at_us=NOW + US, charge=True, now_us=NOW) == "queued"
    assert store.has_pending(["a"])  # a retry backoff is still pending
    store.cancel(a, NOW)
    assert status(store, b) == "blocked"
    assert not store.has_pending(["a", "b"])


# --- daemons ---------------------------------------------------------------------------------
def test_daemons_register_unregister_forget(store: Store) -> None:
    assert store.daemons() == []
    one = store.register_daemon("skadi", 100, NOW - US, "@ygg-1", "async", NOW)
    two = store.register_daemon("fenrir", 200, NOW - 2 * US, "@ygg-2", "legacy", NOW + 1)
    three = store.register_daemon(
        "skadi", 300, NOW, "@ygg-3", "async", NOW + 2, pid_start_ticks=4321, boot_id="b-1"
    )
    assert len({one, two, three}) == 3
    by_id = {d.id: d for d in store.daemons()}
    assert set(by_id) == {one, two, three}
    d = by_id[two]
    assert (d.hostname, d.pid, d.pid_started_us, d.nudge, d.mode, d.heartbeat_us) == (
        "fenrir",
        200,
        NOW - 2 * US,
        "@ygg-2",
        "legacy",
        NOW + 1,
    )
    assert (d.pid_start_ticks, d.boot_id) == (None, None)
    assert (by_id[three].pid_start_ticks, by_id[three].boot_id) == (4321, "b-1")
    store.renew(two, [], NOW + LEASE, NOW + 50)
    assert {d.id: d.heartbeat_us for d in store.daemons()}[two] == NOW + 50

    store.unregister_daemon(one)
    assert {d.id for d in store.daemons()} == {two, three}
    store.forget_daemons([])
    store.forget_daemons([two, three, 12345])
    assert store.daemons() == []
    store.unregister_daemon(one)  # twice is harmless


def test_a_daemons_abstract_socket_address_is_kept_exactly(store: Store) -> None:
    addresses = ["\0ygg/42/0a1b2c", "@ygg-1", "\0back\\slash\\0"]
    ids = [store.register_daemon("h", 1, NOW, a, "async", NOW) for a in addresses]
    assert {d.id: d.nudge for d in store.daemons()} == dict(zip(ids, addresses, strict=True))


def test_breakers_and_reload_errors_live_and_die_with_their_daemon(store: Store) -> None:
    one = store.register_daemon("skadi", 100, NOW, "@ygg-1", "async", NOW)
    two = store.register_daemon("skadi", 200, NOW, "@ygg-2", "async", NOW)
    store.set_breaker(one, "gpu", "open", "gpu cannot be reached", NOW)
    store.set_breaker(one, "gpu", "half-open", "gpu cannot be reached", NOW + 1)
    store.set_breaker(two, "gpu", "closed", None, NOW + 2)
    assert [(b.daemon, b.state, b.since_us) for b in store.breakers()] == [
        (one, "half-open", NOW + 1),
        (two, "closed", NOW + 2),
    ]
    store.set_config_error(two, "pools.gpu.slots must be at least 1, not 0")
    assert {d.id: d.config_error for d in store.daemons()} == {
        one: None,
        two: "pools.gpu.slots must be at least 1, not 0",
    }
    store.unregister_daemon(one)
    assert [b.daemon for b in store.breakers()] == [two]


def test_host_telemetry_is_kept_per_daemon_and_pool_and_dies_with_its_daemon(
    store: Store,
) -> None:
    one = store.register_daemon("skadi", 100, NOW, "@ygg-1", "async", NOW)
    two = store.register_daemon("fenrir", 200, NOW, "@ygg-2", "legacy", NOW)
    spilled = {
        "source": "ollama",
        "models": [{"name": "qwen2.5:7b", "size_bytes": 6_000_000_000, "vram_bytes": 4_500_000}],
        "spilled_to_cpu": ["qwen2.5:7b"],
        "warnings": ["model qwen2.5:7b runs 25% on the CPU, «slow»"],
        "kv_cache_usage": 0.25,
    }
    store.set_telemetry(one, "gpu", {"source": "vllm", "running": 1}, NOW)
    store.set_telemetry(one, "gpu", spilled, NOW + 1)  # replaces the first reading
    store.set_telemetry(two, "gpu", {"source": "vllm", "running": 3, "waiting": 2}, NOW + 2)
    store.set_telemetry(one, "cpu", {"source": "llamacpp", "slots": 2}, NOW + 3)
    assert [(r.pool, r.daemon, r.data, r.since_us) for r in store.telemetry()] == [
        ("cpu", one, {"source": "llamacpp", "slots": 2}, NOW + 3),
        ("gpu", one, spilled, NOW + 1),
        ("gpu", two, {"source": "vllm", "running": 3, "waiting": 2}, NOW + 2),
    ]
    store.set_telemetry(one, "cpu", None, NOW + 4)  # the host fell silent
    store.set_telemetry(one, "cpu", None, NOW + 5)  # forgetting twice is no error
    assert [(r.pool, r.daemon) for r in store.telemetry()] == [("gpu", one), ("gpu", two)]
    store.unregister_daemon(one)
    assert [(r.pool, r.daemon) for r in store.telemetry()] == [("gpu", two)]
    # A dead daemon's readings go with it when the reaper forgets it.
    store.reap(NOW + 10, alive_owners=[], dead_owners=[two])
    assert store.telemetry() == []


def test_queue_heads_name_the_next_task_of_each_kind(store: Store) -> None:
    late = submit(store, "late", kind="code", priority=3)
    urgent = submit(store, "urgent", kind="code", priority=0)
    parent = submit(store, "parent", kind="text")
    child = submit(store, "child", kind="art", after=[parent])
    assert late < urgent
    heads = {h.kind: h for h in store.queue_heads()}
    assert (heads["code"].task_id, heads["code"].status) == (urgent, "queued")
    assert (heads["text"].task_id, heads["text"].blockers) == (parent, ())
    assert (heads["art"].task_id, heads["art"].status, heads["art"].blockers) == (
        child,
        "waiting",
        (parent,),
    )
