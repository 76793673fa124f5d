"""The reaper's liveness test against real processes, a real queue and this machine's /proc.

A wall-clock step is simulated without touching the machine's clock: a daemon's recorded
wall-clock start is shifted by what a step would shift it, while its start in clock ticks since
boot stays what /proc says (no step moves those).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from ygg.dispatch.leases import judge_daemons, take_back
from ygg.dispatch.liveness import boot_id, own_start, parse_start_ticks, start_ticks
from ygg.store import Store, open_store
from ygg.store.model import US, NewTask, now_us

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]
HOST = socket.gethostname()
STEP_US = US // 2  # ntpd steps the clock once the offset passes 128 ms

SLEEPER = """
import sys, time
if len(sys.argv) > 1:
    with open("/proc/self/comm", "w") as comm:  # what `ps` shows; the kernel's limit is 15
        comm.write(sys.argv[1])
print("ready", flush=True)
time.sleep(60)
"""


class Processes:
    """Real processes standing in for daemons and their commands; all killed at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(
        self, *, env: Mapping[str, str] | None = None, comm: str | None = None
    ) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", SLEEPER, *([comm] if comm else [])],
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.started.append(process)
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        return process

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    yield started
    started.close()


@pytest.fixture
def queue(tmp_path: Path) -> str:
    return str(tmp_path / "queue.db")


@pytest.fixture
def store(queue: str) -> Iterator[Store]:
    opened = open_store(queue)
    yield opened
    opened.close()


def register(
    store: Store, pid: int, *, shift_us: int = 0, tick_shift: int = 0, boot: str | None = ""
) -> int:
    """Registers process `pid` as a daemon, its start recorded as a clock step (shift_us) or
    a reused pid (tick_shift) would leave it; boot=None writes a row of an older ygg."""
    started = own_start(pid)
    ticks = None if boot is None or started.ticks is None else started.ticks + tick_shift
    return store.register_daemon(
        HOST,
        pid,
        started.wall_us + shift_us,
        f"@ygg-test-{pid}",
        "async",
        now_us(),
        pid_start_ticks=ticks,
        boot_id=None if boot is None else (boot or started.boot_id),
    )


def hold_with_expired_lease(store: Store, owner: int) -> int:
    """A task `owner` runs whose lease has run out (its lease keeper may be slow)."""
    task_id = store.enqueue(NewTask(title="held", kind="k"), now_us())
    claimed = store.claim(
        "p", ["k"], 1, slots=1, owner=owner, lease_us=US, now_us=now_us() - 10 * US
    )
    assert [c.task_id for c in claimed] == [task_id]
    return task_id


def reaper_round(store: Store, queue: str) -> tuple[set[int], list[int]]:
    """One round of the reaper, run by this test process registered as a daemon."""
    me = register(store, os.getpid())
    alive, dead = judge_daemons(store.daemons(), me, queue)
    take_back(store, alive, dead, now_us())
    return alive, dead


def scenario(
    store: Store, queue: str, processes: Processes, **start: Any
) -> tuple[int, int, subprocess.Popen[str], set[int], list[int]]:
    """A daemon (registered with `start`), its command, a task it holds, one reaper round."""
    daemon = processes.start()
    owner = register(store, daemon.pid, **start)
    command = processes.start(env={"YGG_QUEUE": queue, "YGG_DAEMON": str(owner)})
    task_id = hold_with_expired_lease(store, owner)
    alive, dead = reaper_round(store, queue)
    return owner, task_id, command, alive, dead


def test_a_clock_step_leaves_a_live_daemon_alive(
    store: Store, queue: str, processes: Processes
) -> None:
    owner, task_id, command, alive, dead = scenario(store, queue, processes, shift_us=STEP_US)
    assert owner in alive and dead == []
    assert command.poll() is None, "the command of a live daemon was killed"
    task = store.get(task_id)
    assert (task.status, task.attempts) == ("running", 1)  # nothing taken back
    assert owner in {d.id for d in store.daemons()}


@pytest.mark.parametrize(
    "start",
    [{"tick_shift": 1}, {"tick_shift": 1, "boot": "an-earlier-boot"}, {"boot": "an-earlier-boot"}],
    ids=["pid-reused", "pid-reused-other-boot", "other-boot"],
)
def test_a_reused_pid_is_dead(
    store: Store, queue: str, processes: Processes, start: dict[str, int | str]
) -> None:
    """The pid runs, but not the process that registered (or not since this boot)."""
    owner, task_id, command, alive, dead = scenario(store, queue, processes, **start)
    assert owner not in alive and dead == [owner]
    assert command.wait(10) is not None  # what the dead daemon left running is killed
    assert store.get(task_id).status == "queued"
    assert owner not in {d.id for d in store.daemons()}


@pytest.mark.parametrize(
    ("shift_us", "judged_alive"), [(0, True), (STEP_US, False)], ids=["same-start", "stepped"]
)
def test_rows_without_ticks_keep_the_wall_clock_rule(
    store: Store, queue: str, processes: Processes, shift_us: int, judged_alive: bool
) -> None:
    owner, task_id, _, alive, dead = scenario(store, queue, processes, shift_us=shift_us, boot=None)
    assert (owner in alive, dead) == (judged_alive, [] if judged_alive else [owner])
    assert store.get(task_id).status == ("running" if judged_alive else "queued")


def test_start_ticks_are_read_after_the_last_parenthesis(processes: Processes) -> None:
    line = "4242 (a) (b c) d) S 1 4242 4242 0 -1 4194560 10 0 0 0 3 1 0 0 20 0 1 0 98765 1 2"
    assert parse_start_ticks(line) == 98765
    odd = processes.start(comm="x) (y z) S 1 (")
    assert Path(f"/proc/{odd.pid}/comm").read_text() == "x) (y z) S 1 (\n"
    ticks = start_ticks(odd.pid)
    assert ticks is not None
    # psutil derives its wall-clock start from the same field: they agree to one tick.
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    since_boot_s = psutil.Process(odd.pid).create_time() - psutil.boot_time()
    assert abs(ticks * tick_s - since_boot_s) <= tick_s
    odd.kill()
    odd.wait(10)
    assert start_ticks(odd.pid) is None  # gone (a reused pid would carry another start)
    assert boot_id() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
