"""The receiving side of nudges: who may send one, how many are taken, and the listeners.

Any local user can reach an abstract socket, so nothing in a datagram is trusted. The kernel
attaches the sender's credentials (SO_PASSCRED); only our own user, root, or a user in the
queue file's group (one who may write the queue, and so cancel through it, anyway) is heard.
At most RATE_PER_S datagrams a second are taken (BURST at once), the rest dropped unread, and
what is taken is parsed strictly. Whatever is refused is logged (rate-limited) and the
listener goes on. What passes is still a hint: a cancel is checked against the store before
anything is stopped (see the dispatchers' _on_nudge).
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ygg.nudge import CANCEL, MAX_NUDGE_BYTES, PEERS, WAKE, BadNudge, Nudge, new_address, parse

if TYPE_CHECKING:
    import asyncio

log = structlog.get_logger("ygg.nudge")
RATE_PER_S = 200.0
BURST = 100
LOG_EVERY_S = 10.0  # one event of each name per this period; the next says how many were left out
READS_PER_WAKEUP = 64  # then the event loop runs other work before reading on
RECEIVE_RETRY_S = 0.1  # after a failed receive, so an error that persists cannot spin
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
_ANCILLARY_BYTES = socket.CMSG_SPACE(_UCRED.size)
Ancillary = list[tuple[int, int, bytes]]


@dataclass(frozen=True)
class Credentials:
    pid: int
    uid: int
    gid: int


def credentials(ancillary: Ancillary) -> Credentials | None:
    """The sender's credentials the kernel attached to a datagram (none: refuse it)."""
    for level, kind, data in ancillary:
        ours = level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
        if ours and len(data) >= _UCRED.size:
            return Credentials(*_UCRED.unpack_from(data))
    return None


def groups_of(sender: Credentials) -> set[int]:
    """The sender's groups: its gid, its process's supplementary groups (if that process is
    still there as the same user), and the groups the user database lists its user in."""
    groups = {sender.gid, *_process_groups(sender.pid, sender.uid)}
    try:
        user = pwd.getpwuid(sender.uid)
    except KeyError:
        return groups
    return groups | set(os.getgrouplist(user.pw_name, user.pw_gid))


def _process_groups(pid: int, uid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()  # gone already: a nudge's sender usually is
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    uids = fields.get("Uid", "").split()
    if not uids or int(uids[0]) != uid:
        return set()  # its pid was reused by another user's process
    return {int(group) for group in fields.get("Groups", "").split()}


class SenderPolicy:
    """Who may nudge: our own user, root, or a user in the group of the queue file."""

    def __init__(self, queue_path: str) -> None:
        self.queue_path = queue_path
        self.own_uids = {os.getuid(), os.geteuid()}

    def allows(self, sender: Credentials) -> bool:
        if sender.uid == 0 or sender.uid in self.own_uids:
            return True
        try:
            queue_group = os.stat(self.queue_path).st_gid  # read each time: it may be changed
        except OSError:
            return False
        return queue_group in groups_of(sender)


class TokenBucket:
    """`rate_per_s` tokens a second, at most `burst` saved up; take() spends one if any."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at_s = clock()

    def take(self) -> bool:
        now_s = self._clock()
        elapsed_s = max(now_s - self._at_s, 0.0)
        self._tokens = min(float(self.burst), self._tokens + elapsed_s * self.rate_per_s)
        self._at_s = now_s
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class LogLimiter:
    """At most one log event of each name per `every_s`; the next one logged carries how many
    were left out in between (`suppressed`), so a flood of datagrams never floods the log."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s = every_s
        self._clock = clock
        self._last_s: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def emit(self, event: str, level: str = "warning", **fields: Any) -> bool:
        now_s = self._clock()
        last_s = self._last_s.get(event)
        if last_s is not None and now_s - last_s < self.every_s:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return False
        self._last_s[event] = now_s
        getattr(log, level)(event, suppressed=self._suppressed.pop(event, 0), **fields)
        return True


class Guard:
    """Decides what becomes of one datagram: dropped (over the rate), refused (a sender not
    allowed), ignored (not a nudge), or the nudge it holds."""

    def __init__(self, queue_path: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = SenderPolicy(queue_path)
        self.bucket = TokenBucket(RATE_PER_S, BURST, clock)
        self.log = LogLimiter(clock=clock)

    def admit(self, data: bytes, ancillary: Ancillary) -> Nudge | None:
        if not self.bucket.take():
            self.log.emit("nudges_dropped", rate_per_s=self.bucket.rate_per_s)
            return None
        sender = credentials(ancillary)
        if sender is None or not self.policy.allows(sender):
            self.log.emit(
                "nudge_refused",
                uid=sender and sender.uid,
                gid=sender and sender.gid,
                pid=sender and sender.pid,
            )
            return None
        try:
            return parse(data)
        except BadNudge as exc:
            self.log.emit("nudge_ignored", reason=exc.message, uid=sender.uid, size=len(data))
            return None

    def handle(self, data: bytes, ancillary: Ancillary, act: Callable[[Nudge], None]) -> None:
        """Admits one datagram and acts on it; nothing it does may end a listener."""
        try:
            message = self.admit(data, ancillary)
            if message is not None:
                act(message)
        except Exception:
            self.log.emit("nudge_failed", level="error", exc_info=True)


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    # Before bind: no datagram may arrive without its sender's credentials.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(address)
    return sock


def _receive(sock: socket.socket) -> tuple[bytes, Ancillary]:
    # One byte more than a nudge may have: a longer datagram arrives cut, and is seen as too long.
    data, ancillary, _flags, _address = sock.recvmsg(MAX_NUDGE_BYTES + 1, _ANCILLARY_BYTES)
    return data, ancillary


class Listener:
    """The async dispatcher's listener: reads on the event loop, a bounded batch at a time."""

    def __init__(self, address: str, on_message: Callable[[Nudge], None], queue_path: str):
        self.address = address
        self.guard = Guard(queue_path)
        self._on_message = on_message
        self._sock = _bind(address)
        self._sock.setblocking(False)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        import asyncio  # here, not at the top: `ygg submit` only sends, and starts faster

        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._read)

    def _read(self) -> None:
        for _ in range(READS_PER_WAKEUP):  # the loop calls us again while more are waiting
            try:
                data, ancillary = _receive(self._sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.guard.log.emit("nudge_receive_failed", level="error", error=str(exc))
                return
            self.guard.handle(data, ancillary, self._on_message)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


class BlockingListener:
    """The same listener for the legacy dispatcher: a thread blocked in recvmsg, no event loop.
    It ends only when closed."""

    def __init__(self, on_message: Callable[[Nudge], None], queue_path: str) -> None:
        self.address = new_address()
        self.guard = Guard(queue_path)
        self._on_message = on_message
        self._closed = threading.Event()
        self._sock = _bind(self.address)
        self._thread = threading.Thread(target=self._run, name="nudges", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self._receive_one()
            except Exception:  # nothing a sender does may end this thread; only close() does
                self.guard.log.emit("nudge_failed", level="error", exc_info=True)
                self._closed.wait(RECEIVE_RETRY_S)

    def _receive_one(self) -> None:
        try:
            data, ancillary = _receive(self._sock)
        except OSError as exc:
            if not self._closed.is_set():
                self.guard.log.emit("nudge_receive_failed", level="error", error=str(exc))
                self._closed.wait(RECEIVE_RETRY_S)
            return
        if not self._closed.is_set():
            self.guard.handle(data, ancillary, self._on_message)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RD)  # wakes the blocked recvmsg, however full
        except OSError as exc:
            log.warning("nudge_listener_shutdown_failed", error=str(exc))
        self._thread.join(1.0)
        self._sock.close()


# What a store's hints (another machine's NOTIFY) may say; reloading stays a local matter.
HINTS = frozenset({WAKE, PEERS, CANCEL})


def hint_receiver(deliver: Callable[[Nudge], object]) -> Callable[[str], None]:
    """Turns the text of a store's hint into the nudge it names, for `deliver`; anything else
    is logged and dropped (a hint is never more than a reason to look at the queue)."""

    def receive(payload: str) -> None:
        try:
            message = parse(payload.encode())
        except (BadNudge, UnicodeError) as exc:
            log.warning("store_hint_ignored", reason=str(exc))
            return
        if message.verb not in HINTS:
            log.warning("store_hint_ignored", reason="not a hint", verb=message.verb.decode())
            return
        deliver(message)

    return receive
