"""Nudges: one datagram on a local socket tells a daemon to look at the queue now.

Each daemon listens on an abstract Unix socket (Linux; nothing on disk to clean up after a
crash) whose name it records in the store's daemon table, so a submitter finds every daemon
sharing the queue. Sending never blocks and never fails the sender: a nudge is a hint; the
daemon's slow safety poll still finds the work if one is lost.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

WAKE = b"wake"
CANCEL = b"cancel"
RELOAD = b"reload"
PEERS = b"peers"  # a daemon joined the queue


def new_address() -> str:
    return f"\0ygg/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def send(addresses: Iterable[str], message: bytes = WAKE) -> int:
    """Sends `message` to each address; returns how many were delivered."""
    delivered = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for address in addresses:
            try:
                sock.sendto(message, address)
                delivered += 1
            except OSError:
                pass  # gone, or its buffer is full of nudges already: either way, nothing to do
    return delivered


class Listener:
    def __init__(self, address: str, on_message: Callable[[bytes], None]) -> None:
        self.address = address
        self._on_message = on_message
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind(address)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        import asyncio  # here, not at the top: `ygg submit` only sends, and starts faster

        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                message = self._sock.recv(512)
            except (BlockingIOError, InterruptedError):
                return
            self._on_message(message)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


class BlockingListener:
    """The same listener for the legacy dispatcher: a thread blocked in recv, no event loop."""

    def __init__(self, on_message: Callable[[bytes], None]) -> None:
        self.address = new_address()
        self._on_message = on_message
        self._closed = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.address)
        self._thread = threading.Thread(target=self._run, name="nudges", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                message = self._sock.recv(512)
            except OSError:
                return
            if self._closed:
                return
            self._on_message(message)

    def close(self) -> None:
        self._closed = True
        send([self.address], b"")  # wakes the blocked recv
        self._thread.join(1.0)
        self._sock.close()
