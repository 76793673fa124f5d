"""A wall-clock step between two real daemons on one machine and one queue.

The step is simulated without touching the machine's clock: the holder's registered wall-clock
start is shifted in the database by what a step of 0.5 s would shift it (ntpd steps at 128 ms);
its start in clock ticks since boot stays right, as no step moves those.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, command_pool, wait_until, write_config
from tests.support.runlog import read_run_log, run_host_argv
from ygg import api
from ygg.config import load
from ygg.store import open_store
from ygg.store.model import US

STEP_US = US // 2


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonSet]:
    with DaemonSet(tmp_path / "ygg.toml") as started:
        yield started


def events(daemons: DaemonSet, index: int) -> list[str]:
    lines = daemons.logs[index].read_text(errors="replace").splitlines()
    return [str(json.loads(line).get("event")) for line in lines if line.startswith("{")]


def shift_registered_start(db: Path, pid: int, shift_us: int) -> None:
    conn = sqlite3.connect(db, timeout=10)
    try:
        with conn:
            changed = conn.execute(
                "UPDATE daemons SET pid_started_us = pid_started_us + ? WHERE pid = ?",
                (shift_us, pid),
            ).rowcount
        assert changed == 1
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("holder_mode", "reaper_mode"),
    [("--async", "--legacy"), ("--legacy", "--async")],
    ids=["async-holds,legacy-reaps", "legacy-holds,async-reaps"],
)
def test_a_clock_step_kills_nothing_and_charges_nothing(
    tmp_path: Path, daemons: DaemonSet, holder_mode: str, reaper_mode: str
) -> None:
    runs = tmp_path / "runs.log"
    pools = command_pool("batch", run_host_argv(runs), slots=1, kinds=["batch"])
    # Reaper rounds every 0.2 s in both modes: dozens while the task runs.
    path = write_config(tmp_path, pools, daemon="lease_seconds = 2\npoll_seconds = 0.2")
    store = open_store(str(tmp_path / "queue.db"))
    task = api.new_task(load(str(path)), title="long", kind="batch", params={"seconds": "6"})
    task_id = api.submit(store, task).id

    holder = daemons.start(holder_mode)
    assert wait_until(lambda: len(read_run_log(runs)) == 1, 15)
    shift_registered_start(tmp_path / "queue.db", holder.pid, STEP_US)
    reaper = daemons.start(reaper_mode)
    assert wait_until(lambda: "dispatcher_started" in events(daemons, 1), 15)
    assert not read_run_log(runs)[0].finished, "the task ended before the reaper looked"

    assert wait_until(lambda: store.get(task_id).status == "done", 30), store.get(task_id)
    ran = read_run_log(runs)
    assert len(ran) == 1, f"the task was taken back and run again: {ran}"
    run = ran[0]
    assert run.finished, "the command of the live holder was killed"
    assert run.daemon_pid == holder.pid
    assert store.get(task_id).attempts == 1  # nothing charged
    reaper_events = events(daemons, 1)
    assert "orphans_killed" not in reaper_events and "task_reaped" not in reaper_events
    assert holder.pid in {d.pid for d in store.daemons()}  # the holder was not forgotten
    assert daemons.stop(reaper) == 0 and daemons.stop(holder) == 0
    store.close()
