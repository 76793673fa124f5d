"""sd_notify, written in-house: readiness, status, reload and watchdog messages to systemd.

The protocol is one datagram of newline-separated `KEY=VALUE` lines sent to the AF_UNIX
socket named by `$NOTIFY_SOCKET` — a filesystem path, or `@name` for the abstract namespace.
Without that variable (not under systemd, or not `Type=notify`) every call is a no-op.

Sending never raises into the daemon: systemd being unreachable must not stop the dispatcher.
A failure is logged once as `sd_notify_failed` (and `sd_notify_recovered` when sends work
again), so a watchdog that pings every few seconds cannot flood the journal.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

log = structlog.get_logger("ygg.ops.sdnotify")

Sleep = Callable[[float], Awaitable[None]]


def _address(value: str | None) -> str | None:
    """The socket address `$NOTIFY_SOCKET` names, or None if it names none we can use."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # the abstract namespace, as sd_notify(3) spells it
    if value.startswith("/"):
        return value
    # systemd ≥ 254 also allows vsock:…; it only uses that for VMs, never for a service.
    log.warning("sd_notify_socket_unsupported", notify_socket=value)
    return None


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    raw = environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = environ.get("WATCHDOG_PID")
    # Inherited from a parent that systemd watches, not meant for us (sd_watchdog_enabled(3)).
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("sd_watchdog_usec_invalid", watchdog_usec=raw)
        return None
    return usec if usec > 0 else None


class Notifier:
    """Sends sd_notify messages; every method is a no-op when systemd asked for none.

    The environment is read, never unset (sd_notify(3)'s unset_environment): the command
    backend passes it on, and systemd ignores the children's messages under the unit's
    NotifyAccess=main."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(_address(env.get("NOTIFY_SOCKET")), watchdog_usec=_watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    # --- the messages ------------------------------------------------------------------------
    def ready(self, status: str | None = None) -> bool:
        """The store is open and the pools are up: systemd's start job completes."""
        return self._send("READY=1", status)

    def status(self, text: str) -> bool:
        """A one-line summary shown by `systemctl status`."""
        return self._send(None, text)

    def stopping(self, status: str | None = None) -> bool:
        return self._send("STOPPING=1", status)

    def reloading(self, status: str | None = None) -> bool:
        """Reload begins; send ready() when it ends. MONOTONIC_USEC (CLOCK_MONOTONIC, which
        Python's monotonic clock is on Linux) is what systemd ≥ 253 requires to match the
        two messages under Type=notify-reload; older versions ignore it."""
        stamp = f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}"
        return self._send(stamp, status)

    def watchdog(self) -> bool:
        return self._send("WATCHDOG=1", None)

    def watchdog_interval_s(self) -> float | None:
        """The watchdog timeout systemd enforces (`WatchdogSec=`), or None if it set none for
        this process. WatchdogPacer pings at a quarter of it."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 1_000_000

    # --- sending -----------------------------------------------------------------------------
    def _send(self, head: str | None, status: str | None) -> bool:
        if self.address is None:
            return False
        lines = [head] if head else []
        if status is not None:
            # A newline would start a new assignment: a status could then claim READY=1.
            lines.append("STATUS=" + " ".join(status.splitlines()))
        return self.send("\n".join(lines))

    def send(self, message: str) -> bool:
        """Sends one raw message; True if systemd's socket took it. Never raises."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop: systemd's socket buffer is large, and a message
                # it cannot take now is reported, not waited for.
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    "sd_notify_failed",
                    notify_socket=self._printable_address(),
                    message=message.split("\n", 1)[0],
                    error=repr(exc),
                )
            return False
        if self._failing:
            self._failing = False
            log.info("sd_notify_recovered", notify_socket=self._printable_address())
        return True

    def _printable_address(self) -> str | None:
        return None if self.address is None else self.address.replace("\0", "@", 1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class WatchdogPacer:
    """When to send WATCHDOG=1: every quarter of the watchdog interval, while the daemon
    demonstrably works. Shared by the event loop's pinger and the legacy mode's thread.

    - The pinger turns: it runs on the event loop (or its own thread), so a loop blocked by a
      stuck call never reaches the ping at all. A quarter interval leaves room for a tick that
      comes late: one a quarter late still lands within half the interval. A tick that comes
      later still pings — the loop turns again, and a skipped ping would only widen the gap
      systemd judges — and is logged (`watchdog_tick_late`).
    - The daemon progresses: `progress()` is a counter that must have changed within
      `stall_s` (never less than the interval). It has to move while idle too, so it should
      count a housekeeping round-trip that always happens — in ygg, the reaper's cycle (the
      legacy supervisor's round), which goes through the store. A counter of loop turns
      alone would prove nothing the first condition does not; one that crosses the store
      also catches a wedged database thread behind a live loop. The window must be several
      of those cycles long, so one long but healthy pass does not count as no progress.

    A ping skipped for want of progress is logged (`watchdog_ping_skipped`); systemd acts if
    skips persist past its interval.
    """

    def __init__(
        self,
        interval_s: float,
        progress: Callable[[], int],
        *,
        stall_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.period_s = interval_s / 4
        self.stall_limit_s = max(interval_s, stall_s or 0.0)
        self._progress = progress
        self._clock = clock
        self._last_count, self._last_moved = progress(), clock()

    @classmethod
    def of(
        cls,
        notifier: Notifier,
        progress: Callable[[], int],
        *,
        stall_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> WatchdogPacer | None:
        """The pacer for `notifier`, or None when systemd asked for no watchdog."""
        interval_s = notifier.watchdog_interval_s()
        if interval_s is None or not notifier.enabled:
            return None
        return cls(interval_s, progress, stall_s=stall_s, clock=clock)

    def tick(self, asked: float) -> bool:
        """Whether to ping now, after a wait of `period_s` that began at `asked`."""
        now = self._clock()
        lag_s = now - asked - self.period_s
        if lag_s >= self.period_s:
            log.warning("watchdog_tick_late", lag_s=round(lag_s, 3))
        count = self._progress()
        if count != self._last_count:
            self._last_count, self._last_moved = count, now
        stalled_s = now - self._last_moved
        if stalled_s > self.stall_limit_s:
            stalled_s = round(stalled_s, 3)
            log.warning("watchdog_ping_skipped", reason="no_progress", stalled_s=stalled_s)
            return False
        return True


async def watchdog_pinger(
    notifier: Notifier,
    progress: Callable[[], int],
    *,
    stall_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Pings from the event loop as WatchdogPacer says; returns at once without a watchdog."""
    pacer = WatchdogPacer.of(notifier, progress, stall_s=stall_s, clock=clock)
    if pacer is None:
        return
    while True:
        asked = clock()
        await sleep(pacer.period_s)
        if pacer.tick(asked):
            notifier.watchdog()


class WatchdogThread:
    """Pings from a thread of its own as WatchdogPacer says (the legacy mode has no loop);
    does nothing without a watchdog. `progress` must count the supervisor's rounds. The
    thread owns `notifier`: stop() closes it."""

    def __init__(
        self, notifier: Notifier, progress: Callable[[], int], *, stall_s: float | None = None
    ) -> None:
        self.notifier = notifier
        self._pacer = WatchdogPacer.of(notifier, progress, stall_s=stall_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        if self._pacer is not None:
            self._thread.start()

    def _run(self) -> None:
        assert self._pacer is not None
        while True:
            asked = time.monotonic()
            if self._stop.wait(self._pacer.period_s):
                return
            if self._pacer.tick(asked):
                self.notifier.watchdog()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.notifier.close()
