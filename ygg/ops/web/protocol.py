"""uvicorn's h11 protocol with the two limits it lacks: a deadline for the request head (a
client that sends half a request line and stalls gets 408 and is closed) and 431, not 400,
for a head over h11's size limit."""

from __future__ import annotations

import asyncio
import socket
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

SEND_BUFFER_BYTES = 64 * 1024  # the answers here are small: a page, a status, events


class BoundedH11Protocol(H11Protocol):
    read_timeout_s = 5.0  # set per server by a subclass (see `protocol_class`)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._error_hint = 400
        next_event = self.conn.next_event

        def remembering_next_event() -> Any:
            try:
                return next_event()
            except h11.RemoteProtocolError as exc:
                self._error_hint = exc.error_status_hint
                raise

        self.conn.next_event = remembering_next_event  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # A stalled client holds this much of the kernel's memory, not the 4 MiB autotuning
            # would grant, and an event stream's queue fills (and it is dropped) soon after.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next request's head is due in time too

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.read_timeout_s, self._head_overdue)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        # IDLE: no complete request head yet (a request in flight has its own limits).
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:
            self._send_error(408, "request not received in time")
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        status = self._error_hint if self._error_hint in (400, 431) else 400
        self._send_error(status, "request head too large" if status == 431 else msg)

    def _send_error(self, status: int, text: str) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        try:
            for event in (
                h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase),
                h11.Data(data=(text + "\n").encode()),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:
            pass  # h11 will not answer in this state: closing is all that is left
        self.transport.close()


def protocol_class(read_timeout_s: float) -> type[BoundedH11Protocol]:
    return type("ServerH11Protocol", (BoundedH11Protocol,), {"read_timeout_s": read_timeout_s})
