"""One slot limit per pool for every daemon on the queue, with real daemons and host-side runs.

Two daemons share one queue; their files give the pool 3 and 1 slots. The last one to start or
reload sets the limit for both; `ygg status` shows the file that disagrees, and so does that
daemon's log, once per change. Judged at the host side (run_host.py logs each run's start and
end): a task whose claim began after a limit was stored (its `started_at` in the queue) never
runs while more than that limit run, whichever daemon holds the others.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, command_pool, run_ygg, wait_until, write_config
from tests.support.runlog import Run, alive_pids, read_run_log, run_host_argv
from ygg.store import NewTask, Store, open_store
from ygg.store.model import now_us

pytestmark = pytest.mark.timeout(180)

TASKS = 24
SECONDS = "0.25"


def configure(directory: Path, db: str, log: Path, slots: int) -> Path:
    directory.mkdir()
    pool = command_pool("gpu", run_host_argv(log), slots=slots, kinds=["gpu"])
    return write_config(directory, pool, db=db, daemon="poll_seconds = 0.2")


def limit_set(store: Store, limit: int, by: int) -> float:
    """Waits until the stored limit is `limit`, set by daemon `by`; a time after it committed."""

    def stored() -> bool:
        got = store.pool_limits().get("gpu")
        return got is not None and (got.limit, got.set_by) == (limit, by)

    assert wait_until(stored, 20), f"the limit never became {limit}: {store.pool_limits()}"
    return now_us() / 1e6


def submit(store: Store, first: int, end: int) -> list[int]:
    tasks = [NewTask(f"t{i}", "gpu", params={"seconds": SECONDS}) for i in range(first, end)]
    return store.enqueue_many(tasks, now_us())


def daemon_id(store: Store, process: subprocess.Popen[bytes]) -> int:
    assert wait_until(lambda: any(d.pid == process.pid for d in store.daemons()), 20)
    return next(d.id for d in store.daemons() if d.pid == process.pid)


def worst_between(
    runs: list[Run], started: dict[str, float], since: float, until: float = math.inf
) -> tuple[int, int]:
    """Judges one limit's reign: the runs whose claim began after `since` (the queue's
    started_at; the limit was stored by then) and which started before `until` (when the
    next change was asked for, so it cannot have been in force). At worst, how many runs were
    in progress at the start of one of them; and how many there were."""
    alive = alive_pids(runs)
    reign = [r for r in runs if started[r.task] > since and r.start < until]
    worst = max(
        (sum(1 for o in runs if o.start <= r.start < o.stop_bound(alive)) for r in reign),
        default=0,
    )
    return worst, len(reign)


def events(
    daemons: DaemonSet, process: subprocess.Popen[bytes], name: str
) -> list[dict[str, object]]:
    lines = daemons.log_of(process).splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == name]


def pool_status(config: Path) -> dict[str, object]:
    answer = run_ygg(config, "status", "--json")
    assert answer.returncode == 0, answer.stderr
    pools: list[dict[str, object]] = json.loads(answer.stdout)["pools"]
    return next(p for p in pools if p["name"] == "gpu")


@pytest.mark.parametrize(
    ("engine", "second_mode"),
    [
        ("sqlite", "--async"),
        ("sqlite", "--legacy"),
        pytest.param("postgresql", "--async", marks=pytest.mark.postgres),
    ],
)
def test_the_last_daemon_to_start_or_reload_sets_the_limit_for_all(
    tmp_path: Path, request: pytest.FixtureRequest, engine: str, second_mode: str
) -> None:
    db = str(tmp_path / "queue.db") if engine == "sqlite" else request.getfixturevalue("pg_url")
    log = tmp_path / "runs.log"
    config_a = configure(tmp_path / "a", db, log, slots=3)
    config_b = configure(tmp_path / "b", db, log, slots=1)
    store = open_store(db)
    try:
        with DaemonSet(config_a) as set_a, DaemonSet(config_b) as set_b:
            a = set_a.start("--async")
            a_id = daemon_id(store, a)
            limit_set(store, 3, a_id)
            b = set_b.start(second_mode)
            b_id = daemon_id(store, b)
            since_b = limit_set(store, 1, b_id)

            # status, from either file: the stored limit, and whose file disagrees
            shown = pool_status(config_a)
            assert (shown["slots"], shown["limit"], shown["limit_set_by"]) == (3, 1, b_id)
            assert shown["configured"] == {str(a_id): 3, str(b_id): 1}
            assert shown["disagrees"] == [a_id]
            text = run_ygg(config_b, "status").stdout
            assert f"the files disagree: #{a_id} says 3" in text

            ids = submit(store, 0, TASKS - 8)
            assert wait_until(lambda: store.counts().get("done", 0) >= 3, 60)
            asked_a = time.time()
            a.send_signal(signal.SIGHUP)  # a's file (3) becomes the limit of both
            since_a = limit_set(store, 3, a_id)
            assert pool_status(config_b)["disagrees"] == [b_id]
            assert wait_until(lambda: store.counts().get("done", 0) >= 8, 60)
            asked_b = time.time()
            b.send_signal(signal.SIGHUP)  # and b's (1) again, for a too
            since_b_again = limit_set(store, 1, b_id)
            ids += submit(store, TASKS - 8, TASKS)  # work enough to judge this reign by
            assert wait_until(lambda: store.counts().get("done", 0) == TASKS, 90)
            assert set_a.stop(a) == 0 and set_b.stop(b) == 0
        runs = read_run_log(log)
        started = {str(t.id): (t.started_us or 0) / 1e6 for t in store.list_tasks(limit=100)}
    finally:
        store.close()
    assert sorted(int(r.task) for r in runs) == ids  # each ran once
    first, n_first = worst_between(runs, started, since_b, asked_a)
    assert first <= 1 and n_first > 0
    raised, n_raised = worst_between(runs, started, since_a, asked_b)
    assert raised <= 3 and n_raised > 0
    again, n_again = worst_between(runs, started, since_b_again)
    assert again <= 1 and n_again > 0, "after b's reload a ran past the limit b's file set"
    # (Which daemon ran what is not judged: a daemon that frees a slot claims again in the same
    # transaction, so under a limit of 1 one of them may run everything. The limits above bind
    # either way, and each was set by the other daemon's file half of the time.)
    # a's file disagreed twice (b's start, b's reload), b's once (a's reload): once per change
    assert [e["configured"] for e in events(set_a, a, "pool_limit_disagrees")] == [1, 1]
    assert [e["configured"] for e in events(set_b, b, "pool_limit_disagrees")] == [3]
