"""The real `ygg loop` process: several daemons on one queue, signals, cancel, crash recovery.

Concurrency is measured at the host side: a FakeHost (HTTP on 127.0.0.1 speaking Ollama)
records concurrent requests, and cmd_host.py logs each command's start and end.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import subprocess_env
from tests.support.cmdlog import cmd_argv, max_overlap, read_cmd_log, runs_by_task
from tests.support.hosts import FakeHost
from ygg import api
from ygg.config import Config, load
from ygg.store import Store, open_store

Spawn = Callable[..., subprocess.Popen[bytes]]


def write_config(directory: Path, pools: str, daemon: str = "") -> Config:
    path = directory / "ygg.toml"
    path.write_text(
        f'[daemon]\ndb = "queue.db"\nlog_format = "json"\n{daemon}\n'
        f"[defaults]\nbackoff_seconds = 0.05\n{pools}"
    )
    return load(str(path))


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def batch_pool(log: Path, *, slots: int) -> str:
    """A command pool running cmd_host.py, which logs each run's start and end to `log`."""
    return (
        f'\n[pools.batch]\nbackend = "command"\nargv = {toml_list(cmd_argv(log))}\n'
        f'slots = {slots}\nkinds = ["batch"]\n'
    )


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Starts `ygg loop` processes; kills any still running at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"daemon-{len(started)}.log").open("wb")
        logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "ygg", "--config", str(tmp_path / "ygg.toml"), "loop", *args],
            env=subprocess_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
    for log in logs:
        log.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def submit(store: Store, config: Config, title: str, **fields: object) -> int:
    return api.submit(store, api.new_task(config, title=title, **fields)).id  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "modes", [("--async", "--async"), ("--async", "--legacy")], ids=["async+async", "async+legacy"]
)
def test_two_daemons_never_exceed_slots(
    tmp_path: Path, spawn: Spawn, modes: tuple[str, str]
) -> None:
    log = tmp_path / "cmd.log"
    with FakeHost("ollama") as host:
        config = write_config(
            tmp_path,
            f"""
[pools.gpu]
backend = "ollama"
url = "{host.url}"
model = "m"
slots = 2
kinds = ["chat"]
"""
            + batch_pool(log, slots=2),
        )
        store = open_store(config.daemon.db)
        for i in range(16):
            submit(store, config, f"chat {i}", kind="chat", prompt=f"sleep=0.1 #{i}")
            submit(store, config, f"batch {i}", kind="batch", params={"seconds": "0.1"})
        daemons = [spawn(mode, "--until-idle") for mode in modes]
        for daemon in daemons:
            assert daemon.wait(60) == 0
        assert host.max_in_flight == 2
        assert host.chat_count == 16  # each chat task reached the host exactly once
        runs = read_cmd_log(log)
        assert max_overlap(runs) == 2
        assert all(len(r) == 1 for r in runs_by_task(runs).values())
        assert len(runs) == 16
        assert store.counts() == {"done": 32}


def test_sigterm_drains_then_requeues_without_charging(tmp_path: Path, spawn: Spawn) -> None:
    log = tmp_path / "cmd.log"
    config = write_config(
        tmp_path,
        batch_pool(log, slots=2),
        daemon="drain_seconds = 0.5",
    )
    store = open_store(config.daemon.db)
    quick = submit(store, config, "quick", kind="batch", params={"seconds": "0.2"})
    slow = submit(store, config, "slow", kind="batch", params={"seconds": "30"})
    daemon = spawn()
    assert wait_until(lambda: len(read_cmd_log(log)) == 2, 10)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert store.get(quick).status == "done"  # finished within the drain
    interrupted = store.get(slow)
    assert (interrupted.status, interrupted.attempts) == ("queued", 0)
    slow_run = runs_by_task(read_cmd_log(log))[str(slow)][0]
    assert not slow_run.finished  # its process was killed, not left running


def test_cancel_stops_a_running_command_and_its_children(tmp_path: Path, spawn: Spawn) -> None:
    log = tmp_path / "cmd.log"
    config = write_config(
        tmp_path,
        batch_pool(log, slots=1),
    )
    store = open_store(config.daemon.db)
    task_id = submit(
        store, config, "long", kind="batch", params={"seconds": "60", "spawn_child": "1"}
    )
    spawn()
    assert wait_until(lambda: any(r.child_pids for r in read_cmd_log(log)), 10)
    child = read_cmd_log(log)[0].child_pids[0]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ygg",
            "--config",
            str(tmp_path / "ygg.toml"),
            "cancel",
            str(task_id),
        ],
        env=subprocess_env(),
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: not _alive(child), 5), "the command's process group survived"
    assert store.get(task_id).status == "cancelled"
    # The slot is free again: the next task runs.
    after = submit(store, config, "after", kind="batch", params={"seconds": "0"})
    assert wait_until(lambda: store.get(after).status == "done", 10)
    assert store.get(task_id).status == "cancelled"  # no late result overwrote it


def test_submit_wakes_an_idle_daemon_without_polling(tmp_path: Path, spawn: Spawn) -> None:
    config = write_config(
        tmp_path,
        """
[pools.sim]
backend = "sim"
seconds = 0
slots = 1
kinds = ["general"]
""",
        daemon="poll_seconds = 60",
    )
    store = open_store(config.daemon.db)
    spawn()
    assert wait_until(lambda: bool(store.daemons()), 10)
    time.sleep(0.3)  # the daemon is idle, its next safety poll a minute away
    result = subprocess.run(
        [sys.executable, "-m", "ygg", "--config", str(tmp_path / "ygg.toml"), "submit", "now"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    task_id = int(result.stdout)
    assert wait_until(lambda: store.get(task_id).status == "done", 10)


@pytest.mark.parametrize("mode", ["--async", "--legacy"])
def test_sigkill_recovery_by_the_next_daemon(tmp_path: Path, spawn: Spawn, mode: str) -> None:
    log = tmp_path / "cmd.log"
    config = write_config(
        tmp_path,
        batch_pool(log, slots=1),
        daemon="lease_seconds = 1",
    )
    store = open_store(config.daemon.db)
    task_id = submit(store, config, "survives", kind="batch", params={"seconds": "3"})
    victim = spawn(mode)
    assert wait_until(lambda: len(read_cmd_log(log)) == 1, 10)
    victim.send_signal(signal.SIGKILL)
    victim.wait(5)
    # The attempt dies with its daemon, so it cannot overlap the next owner's run.
    assert wait_until(lambda: not _alive(read_cmd_log(log)[0].pid), 5)
    rescuer = spawn(mode, "--until-idle")
    assert rescuer.wait(30) == 0
    final = store.get(task_id)
    assert (final.status, final.attempts) == ("done", 2)
    runs = runs_by_task(read_cmd_log(log))[str(task_id)]
    assert [r.attempt for r in runs] == [1, 2]
    assert not runs[0].finished and runs[1].finished


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("mode", ["--async", "--legacy"])
def test_pool_status_events_report_running_slots_queued(
    tmp_path: Path, spawn: Spawn, mode: str
) -> None:
    config = write_config(
        tmp_path,
        """
[pools.sim]
backend = "sim"
seconds = 0.5
slots = 2
kinds = ["general"]
""",
        daemon='status_log_seconds = 0.2\npoll_seconds = 0.1\nlog_level = "debug"',
    )
    store = open_store(config.daemon.db)
    for i in range(6):
        submit(store, config, f"t{i}", kind="general")
    daemon = spawn(mode, "--until-idle")
    assert daemon.wait(30) == 0
    events = [json.loads(line) for line in (tmp_path / "daemon-0.log").read_text().splitlines()]
    statuses = [e["pools"]["sim"] for e in events if e["event"] == "pool_status"]
    assert statuses, "no pool_status event was logged"
    slots = 2 if mode == "--async" else 1
    assert all(s["slots"] == slots and 0 <= s["running"] <= slots for s in statuses)
    assert any(s["running"] == slots and s["queued"] > 0 for s in statuses)
    started = [e for e in events if e["event"] == "task_started"]
    assert {(e["pool"], e["attempt"]) for e in started} == {("sim", 1)}
    assert sorted(e["task_id"] for e in started) == list(range(1, 7))
