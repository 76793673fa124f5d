"""The in-process event hub behind `GET /api/events`.

Each stream gets a bounded queue. Publishing never waits: a client whose queue is full is
dropped (its stream ends), so a slow or stalled browser costs the dispatcher one failed
`put_nowait`, never a pause. The number of streams is capped.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import structlog

log = structlog.get_logger("ygg.ops")
QUEUE_EVENTS = 256  # per client: about a second of a busy daemon's events
MAX_STREAMS = 32
_CLOSE = b""  # the sentinel that ends a dropped client's stream


class TooManyStreams(Exception):
    """The cap on event streams is reached."""


class EventHub:
    def __init__(self, *, queue_events: int = QUEUE_EVENTS, max_streams: int = MAX_STREAMS) -> None:
        self.queue_events = queue_events
        self.max_streams = max_streams
        self._clients: set[asyncio.Queue[bytes]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.dropped = 0  # clients dropped for falling behind

    @property
    def streams(self) -> int:
        return len(self._clients)

    def publish(self, event: dict[str, Any]) -> None:
        """Hands `event` to every stream (on the hub's loop; from another thread use
        `publish_threadsafe`). Cheap when nobody listens: the dispatcher calls it per task."""
        if not self._clients:
            return
        frame = _frame(event)  # encoded once, whatever the number of streams
        for queue in list(self._clients):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(queue)

    def publish_threadsafe(self, event: dict[str, Any]) -> None:
        """For the legacy mode's worker threads: the server's loop delivers the event."""
        loop = self._loop
        if loop is None or not self._clients:
            return
        if threading.get_ident() == self._loop_thread:
            self.publish(event)
        else:
            loop.call_soon_threadsafe(self.publish, event)

    def _drop(self, queue: asyncio.Queue[bytes]) -> None:
        self._clients.discard(queue)
        self.dropped += 1
        log.warning("event_stream_dropped", reason="client fell behind")
        while not queue.empty():  # make room for the sentinel that ends its stream
            queue.get_nowait()
        queue.put_nowait(_CLOSE)

    def subscribe(self) -> asyncio.Queue[bytes]:
        if len(self._clients) >= self.max_streams:
            raise TooManyStreams(f"at most {self.max_streams} event streams are served")
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        queue: asyncio.Queue[bytes] = asyncio.Queue(self.queue_events)
        self._clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self._clients.discard(queue)

    async def stream(
        self, queue: asyncio.Queue[bytes], *, keepalive_s: float = 15.0
    ) -> AsyncIterator[bytes]:
        """The SSE body for one subscriber: `event: <type>` and `data: <json>` per event, a
        comment line now and then so proxies and the client see the stream is alive."""
        try:
            yield b": ygg events\n\n"
            while True:
                try:
                    async with asyncio.timeout(keepalive_s):
                        event = await queue.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                frames = [event]
                while not queue.empty() and event is not _CLOSE:  # one write for a burst
                    frames.append(event := queue.get_nowait())
                if frames[-1] is _CLOSE:
                    return
                yield b"".join(frames)
        finally:
            self.unsubscribe(queue)


def _frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.get('type', 'message')}\ndata: {data}\n\n".encode()


def task_event(task_id: int, status: str | None, **extra: Any) -> dict[str, Any]:
    return {"type": "task", "id": task_id, "status": status, **extra}


def pool_event(
    pool: str,
    running: int,
    slots: int,
    breaker: str,
    reason: str | None,
    limit: int | None = None,
) -> dict[str, Any]:
    return {
        "type": "pool",
        "pool": pool,
        "running": running,
        "slots": slots,
        "limit": slots if limit is None else limit,  # the stored limit, for every daemon
        "breaker": breaker,
        "breaker_reason": reason,
    }
