"""sd_notify against real datagram sockets standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ygg.ops.sdnotify import Notifier, WatchdogThread, watchdog_pinger


class FakeSystemd:
    """A bound AF_UNIX datagram socket: what systemd's notify socket is."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5.0)  # a missing datagram fails the test instead of hanging it

    def receive(self) -> str:
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        self.sock.setblocking(False)
        try:
            messages = []
            while True:
                try:
                    messages.append(self.sock.recv(4096).decode())
                except BlockingIOError:
                    return messages
        finally:
            self.sock.settimeout(5.0)


@pytest.fixture
def path_systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    address = str(tmp_path / "notify")
    fake = FakeSystemd(address)
    yield fake, address
    fake.sock.close()


@pytest.fixture
def abstract_systemd() -> Iterator[tuple[FakeSystemd, str]]:
    name = f"ygg-test-notify/{os.getpid()}/{uuid.uuid4().hex}"
    fake = FakeSystemd("\0" + name)
    yield fake, "@" + name
    fake.sock.close()


def test_path_socket_gets_the_exact_datagrams(path_systemd: tuple[FakeSystemd, str]) -> None:
    fake, address = path_systemd
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.ready("running 0, queued 3")
    assert fake.receive() == "READY=1\nSTATUS=running 0, queued 3"
    assert notifier.status("running 2, queued 1")
    assert fake.receive() == "STATUS=running 2, queued 1"
    assert notifier.stopping()
    assert fake.receive() == "STOPPING=1"
    assert notifier.watchdog()
    assert fake.receive() == "WATCHDOG=1"
    notifier.close()


def test_abstract_socket_gets_the_exact_datagrams(
    abstract_systemd: tuple[FakeSystemd, str],
) -> None:
    fake, address = abstract_systemd
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.ready()
    assert fake.receive() == "READY=1"
    assert notifier.stopping("draining 2 attempts")
    assert fake.receive() == "STOPPING=1\nSTATUS=draining 2 attempts"
    notifier.close()


def test_reloading_carries_the_monotonic_clock(path_systemd: tuple[FakeSystemd, str]) -> None:
    fake, address = path_systemd
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    low_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading("reloading configuration")
    high_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = fake.receive().split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert low_us <= int(lines[1].removeprefix("MONOTONIC_USEC=")) <= high_us
    assert lines[2:] == ["STATUS=reloading configuration"]
    notifier.close()


def test_a_status_cannot_smuggle_another_assignment(path_systemd: tuple[FakeSystemd, str]) -> None:
    fake, address = path_systemd
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    notifier.status("queued 1\nREADY=1")
    assert fake.receive() == "STATUS=queued 1 READY=1"
    notifier.close()


def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    notifier = Notifier.from_env()
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.watchdog() is False
    asyncio.run(watchdog_pinger(notifier, lambda: 0))  # returns at once: nobody to ping


def test_from_env_unsets_nothing(
    monkeypatch: pytest.MonkeyPatch, path_systemd: tuple[FakeSystemd, str]
) -> None:
    _, address = path_systemd
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_env()
    notifier.ready()
    notifier.close()
    assert os.environ["NOTIFY_SOCKET"] == address
    assert os.environ["WATCHDOG_USEC"] == "4000000"
    assert os.environ["WATCHDOG_PID"] == str(os.getpid())


@pytest.mark.parametrize(
    ("env", "expected_s"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid())}, 2.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected_s: float | None) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify", **env})
    assert notifier.watchdog_interval_s() == expected_s


def test_send_failure_logs_one_warning_and_never_raises(tmp_path: Path) -> None:
    gone = tmp_path / "nobody-listens-here"
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(gone)})
    with capture_logs() as events:
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.status("still down") is False
    failures = [e for e in events if e["event"] == "sd_notify_failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "warning"
    assert failures[0]["message"] == "READY=1"
    # Once systemd's socket is back, sends work again and the recovery is logged.
    fake = FakeSystemd(str(gone))
    with capture_logs() as events:
        assert notifier.status("back") is True
    assert [e["event"] for e in events] == ["sd_notify_recovered"]
    assert fake.receive() == "STATUS=back"
    fake.sock.close()
    notifier.close()


def test_unsupported_socket_address_is_reported_not_used() -> None:
    with capture_logs() as events:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "relative/path"})
    assert not notifier.enabled
    assert [e["event"] for e in events] == ["sd_notify_socket_unsupported"]


# --- the watchdog pinger: a scripted clock and sleep, so no test depends on real timing -----


class Script:
    """Drives watchdog_pinger: each sleep advances the clock by the period plus a scripted lag
    and may bump the progress counter; the pinger is stopped after the last step."""

    def __init__(self, steps: list[tuple[float, bool]]) -> None:
        self.now_s = 100.0
        self.count = 0
        self.steps = list(steps)

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, period_s: float) -> None:
        if not self.steps:
            raise asyncio.CancelledError
        lag_s, progressed = self.steps.pop(0)
        self.now_s += period_s + lag_s
        self.count += progressed


def run_pinger(address: str, script: Script, **kwargs: float) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "10000000"})
    progress: Callable[[], int] = lambda: script.count  # noqa: E731
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(
            watchdog_pinger(notifier, progress, clock=script.clock, sleep=script.sleep, **kwargs)
        )
    notifier.close()


def test_pinger_pings_at_a_quarter_of_the_interval_while_progressing(
    path_systemd: tuple[FakeSystemd, str],
) -> None:
    fake, address = path_systemd
    script = Script([(0.01, True)] * 4)
    periods: list[float] = []
    original = script.sleep

    async def recording_sleep(period_s: float) -> None:
        periods.append(period_s)
        await original(period_s)

    script.sleep = recording_sleep  # type: ignore[method-assign]
    run_pinger(address, script)
    assert set(periods) == {2.5}  # a tick a quarter late still lands within half the interval
    assert fake.pending() == ["WATCHDOG=1"] * 4


def test_a_late_tick_still_pings(path_systemd: tuple[FakeSystemd, str]) -> None:
    fake, address = path_systemd
    # Second tick: the loop was blocked 6 s past a 2.5 s period. It turns again, so it pings
    # at once (skipping would only widen the gap systemd judges) and says it was late.
    script = Script([(0.0, True), (6.0, True), (0.0, True)])
    with capture_logs() as events:
        run_pinger(address, script)
    assert fake.pending() == ["WATCHDOG=1"] * 3
    late = [e for e in events if e["event"] == "watchdog_tick_late"]
    assert [e["lag_s"] for e in late] == [6.0]
    assert not [e for e in events if e["event"] == "watchdog_ping_skipped"]


def test_pinger_stops_when_progress_stalls(path_systemd: tuple[FakeSystemd, str]) -> None:
    fake, address = path_systemd
    # Progress once, then not for five ticks of 2.6 s: pings continue within one interval
    # (10 s) of the last progress, then stop; progress resumes the pings.
    script = Script([(0.1, True)] + [(0.1, False)] * 5 + [(0.1, True)])
    with capture_logs() as events:
        run_pinger(address, script)
    assert fake.pending() == ["WATCHDOG=1"] * 5
    skipped = [e for e in events if e["event"] == "watchdog_ping_skipped"]
    assert [(e["reason"], e["stalled_s"]) for e in skipped] == [
        ("no_progress", 10.4),
        ("no_progress", 13.0),
    ]


@pytest.mark.parametrize(
    ("stall_s", "pings"), [(30.0, 7), (1.0, 4)], ids=["longer", "never-below-interval"]
)
def test_pinger_stall_window_is_configurable(
    path_systemd: tuple[FakeSystemd, str], stall_s: float, pings: int
) -> None:
    """A window longer than the reaper's cycle keeps a long but healthy pass from stopping
    the pings; one shorter than the interval is the interval."""
    fake, address = path_systemd
    script = Script([(0.1, True)] + [(0.1, False)] * 6)  # 15.6 s without progress
    run_pinger(address, script, stall_s=stall_s)
    assert fake.pending() == ["WATCHDOG=1"] * pings


def test_a_blocked_event_loop_sends_no_ping(path_systemd: tuple[FakeSystemd, str]) -> None:
    """The real loop and the real clock: while a call blocks the loop the pinger cannot run,
    so systemd hears nothing; once the loop is free again the pings resume."""
    fake, address = path_systemd
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    counter = iter(range(1_000_000))

    def listen_s(timeout_s: float) -> list[str]:
        fake.sock.settimeout(timeout_s)
        try:
            return [fake.sock.recv(4096).decode()]
        except TimeoutError:
            return []
        finally:
            fake.sock.settimeout(5.0)

    async def main() -> tuple[list[str], list[str]]:
        pinger = asyncio.create_task(watchdog_pinger(notifier, lambda: next(counter)))
        first = await asyncio.to_thread(fake.receive)  # a live loop pings (every 0.1 s)
        assert first == "WATCHDOG=1"
        fake.pending()
        # A thread listens for 0.5 s while the loop is stuck for 0.6 s: nothing may arrive.
        executor_job = asyncio.get_running_loop().run_in_executor(None, listen_s, 0.5)
        time.sleep(0.6)  # the stuck call; no await between the drain above and here
        during = await executor_job
        after = await asyncio.to_thread(listen_s, 5.0)  # the late tick pings
        pinger.cancel()
        return during, after

    during, after = asyncio.run(main())
    assert during == []
    assert after == ["WATCHDOG=1"]
    notifier.close()


# --- the legacy mode's pinger thread: the real clock, bounded waits -----------------------


def listen_for_silence(fake: FakeSystemd, silence_s: float, timeout_s: float) -> bool:
    """Whether a gap of `silence_s` without a datagram comes within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            fake.sock.settimeout(silence_s)
            try:
                fake.sock.recv(4096)
            except TimeoutError:
                return True
        return False
    finally:
        fake.sock.settimeout(5.0)


def test_watchdog_thread_pings_while_the_rounds_move(
    path_systemd: tuple[FakeSystemd, str],
) -> None:
    fake, address = path_systemd
    rounds = [0]
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    watchdog = WatchdogThread(notifier, lambda: rounds[0])  # pings every 0.05 s
    with capture_logs() as events:
        watchdog.start()
        try:
            assert fake.receive() == "WATCHDOG=1"
            # The supervisor stops going round: the pings stop once the window (here the
            # interval, 0.2 s) has passed.
            assert listen_for_silence(fake, silence_s=0.5, timeout_s=5.0)
            rounds[0] += 1
            assert fake.receive() == "WATCHDOG=1"  # a round resumes them
        finally:
            watchdog.stop()
    assert "no_progress" in [e.get("reason") for e in events]
    fake.pending()
    assert listen_for_silence(fake, silence_s=0.3, timeout_s=1.0)  # stopped for good


def test_watchdog_thread_does_nothing_without_a_watchdog(
    path_systemd: tuple[FakeSystemd, str],
) -> None:
    fake, address = path_systemd
    before = {t.name for t in threading.enumerate()}
    watchdog = WatchdogThread(Notifier.from_env({"NOTIFY_SOCKET": address}), lambda: 0)
    watchdog.start()
    assert "watchdog" not in {t.name for t in threading.enumerate()} - before
    watchdog.stop()
    assert fake.pending() == []
