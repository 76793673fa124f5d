"""Stopping while another process holds the queue's write lock: the daemon must not wait for it
for ever. A second signal gives up on the writes at once; a single one does so a bounded time
after its drain. The leases (here: the next daemon on this machine) return the tasks."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.faultfs import write_lock_held
from ygg.store import open_store

MODES = pytest.mark.parametrize("mode", ["--async", "--legacy"])
POOL = '\n[pools.sim]\nbackend = "sim"\nseconds = 2\nslots = 1\nkinds = ["general"]\n'
LOCK_S = 90.0  # far longer than any stop may take
BUSY_TIMEOUT_S = 5.0  # one wait of SQLite's busy handler, which a stop cannot interrupt


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonSet]:
    with DaemonSet(tmp_path / "ygg.toml") as started:
        yield started


def running_daemon(tmp_path: Path, daemons: DaemonSet, mode: str) -> tuple[Path, int]:
    path = write_config(
        tmp_path, POOL, daemon="poll_seconds = 0.2\ndrain_seconds = 0.3\nlease_seconds = 3"
    )
    task_id = int(run_ygg(path, "submit", "long", "--param", "seconds=30").stdout)
    daemon = daemons.start(mode)
    with open_store(str(tmp_path / "queue.db")) as store:
        assert wait_until(lambda: store.get(task_id).status == "running", 15)
    assert daemon.poll() is None
    return path, task_id


def assert_recovered(path: Path, task_id: int, daemons: DaemonSet, mode: str) -> None:
    """The lock is gone: the next daemon on this machine sees the stopped one is dead and
    takes its task back at once; it runs again (its interrupted attempt is charged)."""
    successor = daemons.start(mode)
    with open_store(str(path.parent / "queue.db")) as store:
        assert wait_until(lambda: store.get(task_id).attempts == 2, 20), store.get(task_id)
        assert store.get(task_id).status == "running"
    assert daemons.stop(successor) == 0


@MODES
def test_a_second_signal_stops_at_once_while_the_lock_is_held(
    tmp_path: Path, daemons: DaemonSet, mode: str
) -> None:
    path, task_id = running_daemon(tmp_path, daemons, mode)
    daemon = daemons.started[0]
    with write_lock_held(tmp_path / "queue.db", LOCK_S):
        daemon.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the drain is over; the release now waits for the lock
        assert daemon.poll() is None, "it stopped without having to write?"
        forced_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
        took_s = time.monotonic() - forced_at
    log = daemons.log_of(daemon)
    assert took_s < BUSY_TIMEOUT_S + 5, f"the forced stop took {took_s:.1f} s:\n{log[-3000:]}"
    assert code == 1, log[-3000:]
    assert '"store_writes_abandoned"' in log
    assert "Traceback" not in log
    assert_recovered(path, task_id, daemons, mode)


@MODES
def test_one_signal_gives_up_on_the_lock_a_bounded_time_after_the_drain(
    tmp_path: Path, daemons: DaemonSet, mode: str
) -> None:
    path, task_id = running_daemon(tmp_path, daemons, mode)
    daemon = daemons.started[0]
    with write_lock_held(tmp_path / "queue.db", LOCK_S):
        asked = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
        took_s = time.monotonic() - asked
    log = daemons.log_of(daemon)
    # drain 0.3 s + 10 s of grace for the writes + one busy timeout, with room for a slow box
    assert took_s < 0.3 + 10 + BUSY_TIMEOUT_S + 10, f"took {took_s:.1f} s:\n{log[-3000:]}"
    assert code == 1, log[-3000:]
    assert '"store_writes_abandoned"' in log
    assert_recovered(path, task_id, daemons, mode)
