"""The systemd watchdog as systemd would see it: a real `ygg loop` in each mode, its
NOTIFY_SOCKET a datagram socket this test listens on, WATCHDOG_USEC one second.

systemd kills a service whose pings are a whole interval apart. The daemon pings every quarter
interval; the bound asserted here is half the interval — generous, and still the property that
keeps a healthy daemon alive. A daemon whose store stops moving (another process holds the
write lock: the reaper and the supervisor cannot go round) must fall silent.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, command_pool, wait_until, write_config
from tests.support.faultfs import write_lock_held
from tests.support.runlog import run_host_argv
from ygg.ops.progress import stall_window_s

INTERVAL_S = 1.0
MAX_GAP_S = INTERVAL_S / 2
MEASURE_S = 6.0
LEASE_S = 3.0  # with the default poll_seconds (2): the window is its floor, 10 s
POLL_S = 2.0  # the default: the reaper goes round every 1.5 s, longer than the interval
# systemd semantics: WATCHDOG_PID names the process the watchdog is for; exec keeps the pid.
AS_WATCHED = ["sh", "-c", 'export WATCHDOG_PID=$$; exec "$@"', "sh"]


class PingRecorder:
    """systemd's notify socket: records when each WATCHDOG=1 arrived (monotonic clock)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.pings: list[float] = []
        self.other: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closed.is_set():
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            if message == "WATCHDOG=1":
                self.pings.append(time.monotonic())
            else:
                self.other.append(message)

    def since(self, start: float) -> list[float]:
        return [t for t in list(self.pings) if t >= start]

    def silent_for(self, seconds: float) -> bool:
        pings = list(self.pings)
        return bool(pings) and time.monotonic() - pings[-1] >= seconds

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[PingRecorder]:
    listening = PingRecorder(tmp_path / "notify")
    yield listening
    listening.close()


def skipped(daemons: DaemonSet) -> list[dict[str, object]]:
    lines = daemons.logs[0].read_text(errors="replace").splitlines()
    found = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in found if e["event"] == "watchdog_ping_skipped"]


@pytest.mark.parametrize("mode", ["--async", "--legacy"])
def test_watchdog_pings_steadily_and_stops_without_progress(
    tmp_path: Path, recorder: PingRecorder, mode: str
) -> None:
    pools = command_pool("batch", run_host_argv(tmp_path / "runs.log"), slots=1, kinds=["x"])
    config = write_config(tmp_path, pools, daemon=f"lease_seconds = {LEASE_S}")
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    with DaemonSet(config, prefix=AS_WATCHED, env=env) as daemons:
        process = daemons.start(mode)
        assert wait_until(lambda: bool(recorder.pings), 30), daemons.log_of(process)
        first = recorder.pings[0]
        time.sleep(MEASURE_S)
        pings = recorder.since(first)
        gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
        assert len(pings) >= MEASURE_S / MAX_GAP_S, pings
        assert max(gaps) < MAX_GAP_S, f"gaps between pings: {[round(g, 3) for g in gaps]}"
        assert skipped(daemons) == []

        window_s = stall_window_s(LEASE_S, POLL_S)
        with write_lock_held(tmp_path / "queue.db", window_s + 60):
            # No progress through the store: the pings stop once the window has passed, and
            # stay stopped for two intervals (systemd would have killed it after one).
            stopped = wait_until(lambda: recorder.silent_for(2 * INTERVAL_S), window_s + 20)
            assert stopped, "the pings went on while the store could not move"
            assert process.poll() is None
        assert {e["reason"] for e in skipped(daemons)} == {"no_progress"}
        released = time.monotonic()
        assert wait_until(lambda: bool(recorder.since(released)), 30), "pings did not resume"
        assert daemons.stop(process) == 0
