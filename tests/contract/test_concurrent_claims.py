"""Claims from many OS processes on one queue: no task twice, none lost, never past `slots`.

Each claimer is this file run as a script (`python test_concurrent_claims.py ...`), so it shares
nothing with the test process but the queue. Claim and completion times are taken with
time.monotonic_ns() (CLOCK_MONOTONIC: one clock for every process on the machine).

The recorded interval of a claim starts after claim() returned (its transaction committed) and
ends before complete() is called (before that transaction begins): it lies inside the time the
task really was `running`, so an overlap seen here is an overlap that really happened.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ygg.store import NewTask, Outcome, open_store
from ygg.store.model import US, now_us

PROCESSES = 8
DEADLINE_S = 60.0  # a safety bound for a loaded machine, not a speed claim
LEASE_US = 600 * US  # nobody's lease expires during a test


# --- the claimer process -------------------------------------------------------------------------
def claimer(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("out")
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--kinds", required=True)
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--max-limit", type=int, required=True)
    parser.add_argument("--hold-ms", type=float, default=0.0)
    parser.add_argument("--together", type=int, default=0, help="complete a batch at once")
    parser.add_argument("--go", required=True, help="start once this file exists")
    args = parser.parse_args(argv)

    rng = random.Random(args.owner)
    kinds = args.kinds.split(",")
    store = open_store(args.db, synchronous="normal", busy_timeout_s=DEADLINE_S)
    Path(args.out + ".ready").touch()
    deadline = time.monotonic() + DEADLINE_S
    go = Path(args.go)
    while not go.exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.001)

    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rng.shuffle(kinds)
        asked_ns = time.monotonic_ns()
        claims = store.claim(
            args.pool,
            kinds,
            rng.randint(1, args.max_limit),
            slots=args.slots,
            owner=args.owner,
            lease_us=LEASE_US,
            now_us=now_us(),
        )
        claimed_ns = time.monotonic_ns()
        if not claims:
            counts = store.counts()
            if not counts.get("queued") and not counts.get("waiting"):
                break  # what is still running belongs to others, who will finish it
            time.sleep(rng.uniform(0.0002, 0.001))
            continue
        if args.hold_ms:
            time.sleep(rng.uniform(args.hold_ms / 4, args.hold_ms) / 1000)
        # together: the whole batch's outcomes in one transaction, as the StoreThread does
        with store.batch() if args.together else contextlib.nullcontext():
            for c in claims:
                done_ns = time.monotonic_ns()
                outcome = Outcome(result=f"owner {args.owner}")
                recorded = store.complete(c.task_id, c.token, outcome, now_us())
                records.append(
                    {
                        "task": c.task_id,
                        "token": c.token,
                        "attempt": c.attempt,
                        "asked_ns": asked_ns,
                        "claimed_ns": claimed_ns,
                        "done_ns": done_ns,
                        "recorded": recorded is not None,
                    }
                )
    else:
        return 4  # ran out of time
    store.close()
    Path(args.out).write_text(json.dumps(records))
    return 0


# --- the test side -------------------------------------------------------------------------------
def run_claimers(
    tmp_path: Path, db: str, processes: int = PROCESSES, **options: object
) -> list[list[dict[str, Any]]]:
    """Runs `processes` claimers on `db` at once; each one's records."""
    go = tmp_path / "go"
    outs = [tmp_path / f"claimer-{n}.json" for n in range(processes)]
    procs = []
    for n, out in enumerate(outs, start=1):
        argv = [sys.executable, __file__, db, str(out), "--owner", str(n), "--go", str(go)]
        for key, option in options.items():
            value = option[n] if isinstance(option, dict) else option
            argv += ["--" + key.replace("_", "-"), str(value)]
        procs.append(
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    deadline = time.monotonic() + DEADLINE_S
    try:
        # everyone is ready before anyone starts, so the claims really race
        while not all(Path(str(out) + ".ready").exists() for out in outs):
            assert time.monotonic() < deadline, "the claimers did not start in time"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.005)
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            assert p.returncode == 0, f"claimer exited {p.returncode}: {err}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [json.loads(out.read_text()) for out in outs]


def enqueue_all(db: str, tasks: list[NewTask]) -> list[int]:
    store = open_store(db)
    try:
        with store.batch():  # one transaction
            return [store.enqueue(task, now_us()) for task in tasks]
    finally:
        store.close()


@pytest.mark.timeout(150)
def test_many_processes_claim_every_task_exactly_once(tmp_path: Path, store_url: str) -> None:
    rng = random.Random(2024)
    kinds = ["code", "chat", "batch", "general"]
    tasks: list[NewTask] = []
    for i in range(4000):
        # a few dependencies, so some tasks only become claimable when another process
        # completes their parent
        after = (rng.randint(1, i),) if i > 100 and rng.random() < 0.1 else ()
        tasks.append(
            NewTask(
                title=f"t{i}",
                kind=rng.choice(kinds),
                priority=rng.randint(0, 4),
                depends_on=after,
            )
        )
    ids = enqueue_all(store_url, tasks)

    started = time.monotonic()
    per_process = run_claimers(
        tmp_path,
        store_url,
        pool={n: f"pool-{n % 3}" for n in range(1, PROCESSES + 1)},
        kinds=",".join(kinds),
        slots=100_000,
        max_limit=8,
        together=1,
    )
    elapsed = time.monotonic() - started

    records = [r for rs in per_process for r in rs]
    claimed = Counter(r["task"] for r in records)
    twice = {task: n for task, n in claimed.items() if n > 1}
    assert twice == {}, f"claimed more than once: {sorted(twice)[:20]}"
    assert set(claimed) == set(ids), f"never claimed: {sorted(set(ids) - set(claimed))[:20]}"
    assert all(r["recorded"] for r in records)
    assert all(r["attempt"] == 1 for r in records)
    assert sum(1 for rs in per_process if rs) > 1, "one process took everything"

    store = open_store(store_url)
    try:
        counts = {k: v for k, v in store.counts().items() if v}
        assert counts == {"done": 4000}
        results = {t.id: t.result for t in store.list_tasks(limit=10_000)}
        owners = {r["task"]: n for n, rs in enumerate(per_process, start=1) for r in rs}
        assert results == {task: f"owner {owners[task]}" for task in ids}
        assert {t.attempts for t in store.list_tasks(limit=10_000)} == {1}
    finally:
        store.close()
    assert elapsed < DEADLINE_S


def max_overlap(intervals: list[tuple[int, int]]) -> int:
    """Peak number of intervals in progress at once; touching ends do not overlap."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, delta in events:  # at equal times the -1 sorts first
        current += delta
        peak = max(peak, current)
    return peak


def test_max_overlap() -> None:
    assert max_overlap([]) == 0
    assert max_overlap([(0, 10), (10, 20)]) == 1
    assert max_overlap([(0, 10), (5, 20), (6, 7), (30, 40)]) == 3


@pytest.mark.timeout(150)
def test_many_processes_never_run_more_than_slots(tmp_path: Path, store_url: str) -> None:
    total, slots = 240, 3
    ids = enqueue_all(
        store_url,
        [NewTask(title=f"t{i}", kind="gpu", priority=i % 5) for i in range(total)],
    )
    per_process = run_claimers(
        tmp_path,
        store_url,
        pool="the-pool",
        kinds="gpu",
        slots=slots,
        max_limit=3,
        hold_ms=4,
    )
    records = [r for rs in per_process for r in rs]
    assert sorted(r["task"] for r in records) == ids
    assert all(r["recorded"] for r in records)
    assert all(r["claimed_ns"] <= r["done_ns"] for r in records)
    peak = max_overlap([(r["claimed_ns"], r["done_ns"]) for r in records])
    assert peak <= slots
    assert peak == slots, "the pool was never full: the test did not exercise the limit"


@pytest.mark.timeout(150)
def test_six_processes_on_a_pool_of_two_slots(tmp_path: Path, store_url: str) -> None:
    """Every claimer races for the same two slots: no task is claimed twice, none is lost, and
    never more than two run at once (on PostgreSQL: slot rows, not a count in a snapshot)."""
    total, slots = 120, 2
    ids = enqueue_all(
        store_url, [NewTask(title=f"t{i}", kind="gpu", priority=i % 5) for i in range(total)]
    )
    per_process = run_claimers(
        tmp_path,
        store_url,
        processes=6,
        pool="two-slots",
        kinds="gpu",
        slots=slots,
        max_limit=2,
        hold_ms=3,
    )
    records = [r for rs in per_process for r in rs]
    claimed = Counter(r["task"] for r in records)
    assert {task: n for task, n in claimed.items() if n > 1} == {}
    assert sorted(claimed) == ids
    assert all(r["recorded"] and r["attempt"] == 1 for r in records)
    peak = max_overlap([(r["claimed_ns"], r["done_ns"]) for r in records])
    assert peak <= slots
    assert peak == slots, "the pool was never full: the test did not exercise the limit"
    assert sum(1 for rs in per_process if rs) > 1, "one process took everything"
    store = open_store(store_url)
    try:
        assert {k: v for k, v in store.counts().items() if v} == {"done": total}
    finally:
        store.close()


def resize_while_claimed(url: str, go: Path, total: int, limits: list[int], final: int) -> int:
    """Another daemon's reloads: once the claimers go, sets each of `limits` in turn as a
    tenth more of the `total` tasks is done, then `final` at half; returns when that one had
    committed (monotonic ns)."""
    store = open_store(url)
    try:
        deadline = time.monotonic() + DEADLINE_S
        steps = [*limits, final]
        for step, limit in enumerate(steps, start=1):
            due = total * step // (2 * len(steps))
            while not (go.exists() and store.counts().get("done", 0) >= due):
                assert time.monotonic() < deadline, "the claimers never got that far"
                time.sleep(0.002)
            store.set_pool_limit("the-pool", limit, daemon_id=99, now_us=now_us())
        return time.monotonic_ns()
    finally:
        store.close()


def running_at(records: list[dict[str, Any]], at_ns: int) -> int:
    return sum(1 for r in records if r["claimed_ns"] <= at_ns < r["done_ns"])


@pytest.mark.timeout(90)
def test_resizing_while_many_processes_claim(tmp_path: Path, store_url: str) -> None:
    """The limit moves between 1 and 6 while eight processes claim, then drops to 2 with half
    the tasks done. Judged from the claimers' records: never more than 6 at once, and from
    the last resize on, no task that was claimed after it runs while more than 2 run (tasks
    started before it may finish above the limit)."""
    from concurrent.futures import ThreadPoolExecutor

    total, high, final = 160, 6, 2
    ids = enqueue_all(store_url, [NewTask(title=f"t{i}", kind="gpu") for i in range(total)])
    store = open_store(store_url)
    store.set_pool_limit("the-pool", high, daemon_id=99, now_us=now_us())
    store.close()
    with ThreadPoolExecutor(1) as pool:
        resized = pool.submit(
            resize_while_claimed, store_url, tmp_path / "go", total, [1, high, 3, high], final
        )
        per_process = run_claimers(
            tmp_path,
            store_url,
            pool="the-pool",
            kinds="gpu",
            slots=100,  # the claimers' own files count for nothing: the store holds the limit
            max_limit=3,
            hold_ms=4,
        )
        final_ns = resized.result()
    records = [r for rs in per_process for r in rs]
    assert sorted(r["task"] for r in records) == ids
    assert max_overlap([(r["claimed_ns"], r["done_ns"]) for r in records]) <= high
    after = [r for r in records if r["asked_ns"] > final_ns]
    assert len(after) > total // 4, "the last resize came too late to judge anything after it"
    worst = max(running_at(records, r["claimed_ns"]) for r in after)
    assert worst <= final, f"{worst} ran at once after the limit was lowered to {final}"


if __name__ == "__main__":
    sys.exit(claimer(sys.argv[1:]))
