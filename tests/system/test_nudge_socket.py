"""The nudge socket of a real `ygg loop` (both modes) under datagrams it must not obey.

Any local user can send to a daemon's abstract socket. A command task runs (cmd_host.py); the
daemon renews leases and polls only every 40 s or more, so within these tests only a nudge
can stop an attempt, and `task_cancelled` in the daemon's log says one did.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.cmdlog import cmd_argv, read_cmd_log
from tests.support.daemons import DaemonSet, command_pool, run_ygg, wait_until, write_config
from tests.support.nudges import GARBAGE, nobody, send
from ygg import api, nudge
from ygg.config import load
from ygg.store import Store, open_store

MODES = pytest.mark.parametrize("mode", ["--async", "--legacy"])
# Nothing but a nudge acts within a test: the lease keeper runs every 40 s, the poll every 60.
SLOW = "lease_seconds = 120\npoll_seconds = 60"
WAIT_S = 10.0
DONE_S = 30.0


def events(daemons: DaemonSet, process: Any) -> list[dict[str, Any]]:
    out = []
    for line in daemons.log_of(process).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a traceback line, say; the JSON events are what is asserted on
    return out


def named(daemons: DaemonSet, process: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in events(daemons, process) if e.get("event") == name]


def logged_at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def setup(tmp_path: Path, *pools: str) -> tuple[Path, Store, Path]:
    log = tmp_path / "cmd.log"
    body = "".join(command_pool(p, cmd_argv(log), slots=1, kinds=[p]) for p in pools)
    config = write_config(tmp_path, body, daemon=SLOW)
    return config, open_store(str(tmp_path / "queue.db")), log


def submit(config: Path, store: Store, kind: str, seconds: float) -> int:
    task = api.new_task(load(str(config)), title=kind, kind=kind, params={"seconds": str(seconds)})
    return api.submit(store, task).id


def running_run(log: Path, task_id: int) -> bool:
    """Whether a command of the task runs (a killed one never logs its end)."""
    return any(
        r.task == str(task_id) and not r.finished and alive(r.pid) for r in read_cmd_log(log)
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cancel_datagram(task_id: int) -> bytes:
    return b"cancel %d" % task_id  # what `ygg cancel` sends, and anyone could


def nudge_address(store: Store) -> str:
    assert wait_until(lambda: len(store.daemons()) == 1, WAIT_S)
    return store.daemons()[0].nudge


@MODES
def test_a_cancel_nudge_from_nobody_stops_nothing(tmp_path: Path, mode: str) -> None:
    config, store, log = setup(tmp_path, "batch")
    task_id = submit(config, store, "batch", seconds=4)
    with DaemonSet(config) as daemons:
        daemon = daemons.start(mode)
        assert wait_until(lambda: running_run(log, task_id), WAIT_S)
        assert send(nudge_address(store), [cancel_datagram(task_id)] * 3, as_nobody=True) == 3
        # Obeyed, the nudge stops the attempt and leaves the task `running` for good.
        done = wait_until(lambda: store.get(task_id).status == "done", DONE_S)
        assert done, "nobody's nudge stopped the attempt"
        assert daemons.stop(daemon) == 0
    (run,) = read_cmd_log(log)
    assert run.finished and run.end is not None and run.attempt == 1
    refused = named(daemons, daemon, "nudge_refused")
    assert len(refused) == 1, "three refusals, one event: the rest rate-limited"
    assert refused[0]["uid"] == nobody().pw_uid
    assert logged_at(refused[0]) < run.end, "the nudges were read only after the task ended"
    assert not named(daemons, daemon, "task_cancelled")


@MODES
def test_a_cancel_nudge_for_a_task_not_cancelled_stops_nothing(tmp_path: Path, mode: str) -> None:
    config, store, log = setup(tmp_path, "batch")
    task_id = submit(config, store, "batch", seconds=4)
    with DaemonSet(config) as daemons:
        daemon = daemons.start(mode)
        assert wait_until(lambda: running_run(log, task_id), WAIT_S)
        # From an allowed user (ours): heard, checked against the store, and not obeyed.
        assert send(nudge_address(store), [cancel_datagram(task_id)]) == 1
        done = wait_until(lambda: store.get(task_id).status == "done", DONE_S)
        assert done, "a cancel nudge stopped a task the store has not cancelled"
        assert daemons.stop(daemon) == 0
    (run,) = read_cmd_log(log)
    assert run.finished and run.end is not None and run.attempt == 1
    (ignored,) = named(daemons, daemon, "nudge_cancel_ignored")
    assert (ignored["task_id"], ignored["status"]) == (task_id, "running")
    assert logged_at(ignored) < run.end, "the nudge was read only after the task ended"
    assert not named(daemons, daemon, "task_cancelled")


@MODES
def test_garbage_and_a_flood_leave_ygg_cancel_working(tmp_path: Path, mode: str) -> None:
    # Two pools, one task each (a legacy pool runs one at a time): `probe` shows when the
    # listener hears nudges again after the flood; then `ygg cancel` must stop `target`.
    config, store, log = setup(tmp_path, "target", "probe")
    target = submit(config, store, "target", seconds=60)
    probe = submit(config, store, "probe", seconds=60)
    with DaemonSet(config) as daemons:
        daemon = daemons.start(mode)
        assert wait_until(lambda: running_run(log, target) and running_run(log, probe), WAIT_S)
        address = nudge_address(store)
        # Sends block while the socket is full: every datagram went through the listener,
        # unless it stopped reading.
        flood = [*GARBAGE, b"wake", cancel_datagram(target)]
        for payloads, rounds, as_nobody in [
            (GARBAGE, 1, False),
            (GARBAGE, 1, True),
            (flood, 400, False),
            (flood, 400, True),
        ]:
            sent = send(address, payloads, rounds=rounds, as_nobody=as_nobody)
            assert sent == rounds * len(payloads), "the listener stopped reading"
        assert running_run(log, target), "a cancel nudge stopped a task not cancelled"
        # The flood emptied the token bucket; once the listener stops the cancelled probe,
        # it takes nudges again.
        assert run_ygg(config, "cancel", str(probe)).returncode == 0
        assert wait_until(lambda: resend(address, probe, log), WAIT_S), "the listener died"
        result = run_ygg(config, "cancel", str(target))
        assert result.returncode == 0, result.stderr
        assert wait_until(lambda: not running_run(log, target), WAIT_S), "cancel was not prompt"
        assert daemons.stop(daemon) == 0
    assert store.get(target).status == "cancelled"
    cancelled = named(daemons, daemon, "task_cancelled")
    assert {e["task_id"] for e in cancelled} == {target, probe}
    assert not named(daemons, daemon, "lease_lost")
    names = {e.get("event") for e in events(daemons, daemon)}
    assert {"nudge_ignored", "nudge_refused", "nudges_dropped"} <= names
    assert not names & {"nudge_failed", "nudge_receive_failed", "pool_thread_crashed"}


def resend(address: str, task_id: int, log: Path) -> bool:
    """One more cancel nudge for a task the store has cancelled; whether its run has ended."""
    if not running_run(log, task_id):
        return True
    nudge.send([address], cancel_datagram(task_id))
    return wait_until(lambda: not running_run(log, task_id), 0.2)
