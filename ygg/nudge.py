"""Nudges: one datagram on a local socket tells a daemon to look at the queue now.

Each daemon listens on an abstract Unix socket (Linux; nothing on disk to clean up after a
crash) whose name it records in the store's daemon table, so a submitter finds every daemon
sharing the queue. Sending never blocks and never fails the sender: a nudge is a hint; the
daemon's slow safety poll still finds the work if one is lost.

This module is the protocol both sides share; ygg/dispatch/nudge_listen.py is the receiving
side (who may nudge, how often, and the listeners).
"""

from __future__ import annotations

import _socket
import os
from collections.abc import Iterable

from ygg.errors import YggError
from ygg.record import Record

WAKE = b"wake"
CANCEL = b"cancel"
RELOAD = b"reload"
PEERS = b"peers"  # a daemon joined the queue
MAX_NUDGE_BYTES = 64  # the longest valid one, "cancel <19 digits>", is 26
_MAX_TASK_ID = 2**63 - 1  # a SQLite rowid is a signed 64-bit integer
_ARGLESS = frozenset({WAKE, RELOAD, PEERS})


class BadNudge(YggError):
    """A datagram that is not a nudge; the listener ignores it."""


class Nudge(Record):  # not a dataclass: `ygg submit` imports this module
    verb: bytes  # WAKE | CANCEL | RELOAD | PEERS
    task_id: int | None = None  # for CANCEL only


def parse(data: bytes) -> Nudge:
    """The nudge in one datagram, or BadNudge saying why it is none. Strict: exactly a verb,
    or `cancel` and one space and a task id in ASCII digits."""
    if not data:
        raise BadNudge("empty")
    if len(data) > MAX_NUDGE_BYTES:
        raise BadNudge("oversized")
    verb, space, argument = data.partition(b" ")
    if verb in _ARGLESS and not space:
        return Nudge(verb)
    if verb != CANCEL:
        raise BadNudge("unknown verb")
    # bytes.isdigit is ASCII-only, so no other digits, signs, spaces or underscores pass.
    if not argument.isdigit() or not 1 <= int(argument) <= _MAX_TASK_ID:
        raise BadNudge("bad task id")
    return Nudge(CANCEL, int(argument))


def cancel_message(task_id: int) -> bytes:
    return CANCEL + b" %d" % task_id


def new_address() -> str:
    return f"\0ygg/{os.getpid()}/{os.urandom(6).hex()}"


def send(addresses: Iterable[str], message: bytes = WAKE) -> int:
    """Sends `message` to each address; returns how many were delivered."""
    delivered = 0
    # The C module behind `socket`: that wrapper imports selectors and builds its enums,
    # 3 ms of every `ygg submit` while a daemon runs, for one datagram sent.
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for address in addresses:
            try:
                sock.sendto(message, address)
                delivered += 1
            except OSError:
                pass  # gone, or its buffer is full of nudges already: either way, nothing to do
    finally:
        sock.close()
    return delivered
