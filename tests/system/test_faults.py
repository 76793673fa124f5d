"""Process faults against the real `ygg loop`: kill -9, SIGSTOP past the lease, SIGTERM.

Everything is judged at the host side: run_host.py logs each command run (start, heartbeats,
end), so duplicates, overlaps and orphans are seen where they would hurt.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cmdlog import cmd_argv, read_cmd_log
from tests.support.daemons import DaemonSet, command_pool, wait_until, write_config
from tests.support.killsoak import Plan, run_plan, write_plan_config
from tests.support.runlog import (
    alive_pids,
    by_task,
    max_overlap_by_pool,
    overlapping_runs,
    pid_alive,
    read_run_log,
    run_host_argv,
)
from ygg import api
from ygg.config import load
from ygg.store import Store, open_store


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonSet]:
    with DaemonSet(tmp_path / "ygg.toml") as started:
        yield started


def batch_config(directory: Path, *, slots: int, daemon: str = "") -> tuple[Path, Store]:
    pools = command_pool(
        "batch", run_host_argv(directory / "runs.log"), slots=slots, kinds=["batch"]
    )
    path = write_config(directory, pools, daemon=daemon, defaults="max_attempts = 5")
    return path, open_store(str(directory / "queue.db"))


def submit(store: Store, path: Path, title: str, seconds: float) -> int:
    task = api.new_task(
        load(str(path)), title=title, kind="batch", params={"seconds": str(seconds)}
    )
    return api.submit(store, task).id


def events(daemons: DaemonSet, index: int) -> list[dict[str, object]]:
    lines = daemons.logs[index].read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


# --- kill -9 at random moments ------------------------------------------------------------


@pytest.mark.parametrize(
    "plan",
    [
        Plan(tasks=200, kills=5, seconds=6.0, modes=("--async",), seed=4),
        Plan(tasks=100, kills=3, seconds=4.0, modes=("--async", "--async", "--legacy"), seed=7),
    ],
    ids=["one-async-daemon", "async+async+legacy"],
)
def test_kill9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, daemons: DaemonSet, plan: Plan
) -> None:
    write_plan_config(tmp_path, plan)
    figures = run_plan(tmp_path, plan, daemons)
    report = figures.summary()
    assert figures.kills == plan.kills, report
    assert not figures.stuck, report
    assert not figures.lost, report
    assert not figures.stale, report
    assert not figures.slot_violations, report
    assert not figures.duplicates, report
    if len(plan.modes) == 1:  # with several, the others may rightly take all remaining work
        assert all(r is not None for r in figures.recovery_s), report


def test_commands_of_a_killed_daemon_die_with_it(tmp_path: Path, daemons: DaemonSet) -> None:
    path, store = batch_config(tmp_path, slots=3, daemon="lease_seconds = 1")
    ids = [submit(store, path, f"long {i}", 3.0) for i in range(3)]
    victim = daemons.start()
    assert wait_until(lambda: len(read_run_log(tmp_path / "runs.log")) == 3, 15)
    daemons.kill(victim)
    orphans = [r.pid for r in read_run_log(tmp_path / "runs.log")]
    daemons.adopt(orphans)
    survived = not wait_until(lambda: not any(pid_alive(p) for p in orphans), 2.0)
    rescuer = daemons.start("--until-idle")
    assert rescuer.wait(40) == 0
    runs = read_run_log(tmp_path / "runs.log")
    alive = alive_pids(runs)
    assert [store.get(i).status for i in ids] == ["done"] * 3
    assert not overlapping_runs(runs, alive), "a re-run started while the orphan still ran"
    assert not survived, "the commands of a SIGKILLed daemon kept running"


def test_process_group_of_a_killed_daemon_is_gone_after_reclaim(
    tmp_path: Path, daemons: DaemonSet
) -> None:
    """cmd_host.py's grandchild shares the command's process group but not its death signal."""
    log = tmp_path / "cmd.log"
    pools = command_pool("batch", cmd_argv(log), slots=1, kinds=["batch"])
    path = write_config(tmp_path, pools, daemon="lease_seconds = 1\npoll_seconds = 0.2")
    store = open_store(str(tmp_path / "queue.db"))
    task = api.new_task(
        load(str(path)), title="g", kind="batch", params={"seconds": "2", "spawn_child": "1"}
    )
    task_id = api.submit(store, task).id
    victim = daemons.start()
    assert wait_until(lambda: any(r.child_pids for r in read_cmd_log(log)), 15)
    first = read_cmd_log(log)[0]
    daemons.adopt([first.pid, *first.child_pids])
    daemons.kill(victim)
    assert daemons.start("--until-idle").wait(40) == 0
    assert store.get(task_id).status == "done"
    group = {"command": first.pid, "grandchild": first.child_pids[0]}
    wait_until(lambda: not any(pid_alive(p) for p in group.values()), 3.0)
    leftovers = {name: pid for name, pid in group.items() if pid_alive(pid)}
    assert not leftovers, f"the killed daemon's attempt outlived its reclaim: {leftovers}"


# --- SIGSTOP longer than the lease ---------------------------------------------------------


def test_frozen_daemon_keeps_its_tasks_while_alive(tmp_path: Path, daemons: DaemonSet) -> None:
    path, store = batch_config(tmp_path, slots=2, daemon="lease_seconds = 1\npoll_seconds = 0.2")
    ids = [submit(store, path, f"t{i}", 1.0) for i in range(4)]
    frozen = daemons.start()
    log = tmp_path / "runs.log"
    assert wait_until(lambda: len(read_run_log(log)) == 2, 15)
    held = {r.task for r in read_run_log(log)}
    frozen.send_signal(signal.SIGSTOP)
    try:
        other = daemons.start()
        assert wait_until(
            lambda: any(e.get("event") == "dispatcher_started" for e in events(daemons, 1)), 15
        )
        time.sleep(3.0)  # three leases: a reaper that ignored liveness would have struck
        taken = [r for r in read_run_log(log) if r.task in held and r.daemon_pid != frozen.pid]
        assert not taken, "another daemon took the tasks of a frozen daemon that is alive"
    finally:
        frozen.send_signal(signal.SIGCONT)
    assert wait_until(lambda: store.counts() == {"done": 4}, 30), store.counts()
    assert daemons.stop(frozen) == 0 and daemons.stop(other) == 0
    runs = read_run_log(log)
    assert sorted(len(task_runs) for task_runs in by_task(runs).values()) == [1, 1, 1, 1]
    assert not overlapping_runs(runs, alive_pids(runs))
    assert max_overlap_by_pool(runs, set()) == {"batch": 2}
    assert all(store.get(i).attempts == 1 for i in ids)


# --- SIGTERM with every slot busy -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "on_shutdown"),
    [("--async", "requeue"), ("--legacy", "requeue"), ("--async", "block")],
)
def test_sigterm_with_every_slot_busy(
    tmp_path: Path, daemons: DaemonSet, mode: str, on_shutdown: str
) -> None:
    daemon = f'drain_seconds = 0.3\non_shutdown = "{on_shutdown}"\nlease_seconds = 2'
    path, store = batch_config(tmp_path, slots=3, daemon=daemon)
    busy = 3 if mode == "--async" else 1  # legacy runs one task per pool
    ids = [submit(store, path, f"busy {i}", 1.5) for i in range(busy + 2)]
    process = daemons.start(mode)
    log = tmp_path / "runs.log"
    assert wait_until(lambda: len(read_run_log(log)) == busy, 15)
    assert daemons.stop(process, timeout_s=10) == 0
    runs = read_run_log(log)
    started = {int(r.task) for r in runs}
    assert len(started) == busy and not any(r.finished for r in runs)
    assert not alive_pids(runs), "an interrupted command outlived the daemon"
    interrupted = "queued" if on_shutdown == "requeue" else "blocked"
    assert {i: (store.get(i).status, store.get(i).attempts) for i in started} == {
        i: (interrupted, 0) for i in started
    }
    assert [store.get(i).status for i in ids if i not in started] == ["queued"] * 2
    if on_shutdown == "block":
        return
    assert daemons.start(mode, "--until-idle").wait(60) == 0
    assert store.counts() == {"done": busy + 2}
    assert all(store.get(i).attempts == 1 for i in ids)  # the interrupted one was not charged


def test_second_sigterm_forces_a_prompt_stop(tmp_path: Path, daemons: DaemonSet) -> None:
    path, store = batch_config(tmp_path, slots=2, daemon="drain_seconds = 60\nlease_seconds = 2")
    ids = [submit(store, path, f"long {i}", 30.0) for i in range(2)]
    process = daemons.start()
    log = tmp_path / "runs.log"
    assert wait_until(lambda: len(read_run_log(log)) == 2, 15)
    process.send_signal(signal.SIGTERM)
    assert wait_until(
        lambda: any(e.get("event") == "stop_requested" for e in events(daemons, 0)), 10
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) is not None
    runs = read_run_log(log)
    assert not alive_pids(runs), "a forced stop left a command running"
    assert all(store.get(i).status == "queued" for i in ids)
    assert all(store.get(i).attempts == 0 for i in ids)
