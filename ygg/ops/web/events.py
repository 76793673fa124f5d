"""The in-process event hub behind `GET /api/events`.

The dispatcher publishes per task; the hub must cost it next to nothing however many streams
are open. So an event is encoded once, when published (a task's by a template, its strings'
JSON cached), a pool's events collapse to its latest, and a flush at most every `FLUSH_S`
joins the batch and hands the same bytes to every stream: per batch, not per client. Each
stream has a bounded backlog (bytes not yet handed to its socket); a client whose backlog
would overflow is dropped (its stream ends), so a slow or stalled browser never makes the
dispatcher wait. Streams are capped.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

log = structlog.get_logger("ygg.ops")
QUEUE_BYTES = 256 * 1024  # per client: a few seconds of a busy daemon's events
MAX_STREAMS = 32
FLUSH_S = 0.05  # events wait at most this long: a page cannot tell, the dispatcher can


class TooManyStreams(Exception):
    """The cap on event streams is reached."""


class Subscriber:
    """One stream's backlog: encoded batches not yet handed to its socket."""

    __slots__ = ("backlog", "backlog_bytes", "dropped", "ready")

    def __init__(self) -> None:
        self.backlog: list[bytes] = []
        self.backlog_bytes = 0
        self.ready = asyncio.Event()
        self.dropped = False

    def take(self) -> bytes:
        self.ready.clear()
        batch = b"".join(self.backlog)
        self.backlog.clear()
        self.backlog_bytes = 0
        return batch


class EventHub:
    def __init__(
        self,
        *,
        queue_bytes: int = QUEUE_BYTES,
        max_streams: int = MAX_STREAMS,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.queue_bytes = queue_bytes
        self.max_streams = max_streams
        self.flush_s = flush_s
        self._clients: set[Subscriber] = set()
        self._pending: list[str] = []  # encoded frames
        self._pools: dict[str, Callable[[], dict[str, Any]]] = {}  # read at the flush
        self._flush_at: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.dropped = 0  # clients dropped for falling behind

    @property
    def streams(self) -> int:
        return len(self._clients)

    def publish(self, event: dict[str, Any]) -> None:
        """Queues `event` for every stream (on the hub's loop; from another thread use
        `publish_threadsafe`). Cheap when nobody listens."""
        if self._clients and self._loop is not None:
            self._add(frame(event))

    def publish_task(
        self,
        task_id: int,
        status: str | None,
        pool: str | None = None,
        attempt: int | None = None,
        kind: str | None = None,
    ) -> None:
        """A task's status changed: the dispatcher's per-task event, so the cheapest."""
        if self._clients and self._loop is not None:
            self._pending.append(task_frame(task_id, status, pool, attempt, kind))
            if self._flush_at is None:
                self._arm()

    def publish_pool(self, pool: str, state: Callable[[], dict[str, Any]]) -> None:
        """A change of `pool`: its event, `state()`, is made at the flush, once per batch
        however many tasks started or ended (only the latest running count matters)."""
        if not self._clients or self._loop is None:
            return
        self._pools[pool] = state
        self._arm()

    def publish_threadsafe(self, event: dict[str, Any]) -> None:
        """For the legacy mode's worker threads: encoded here, delivered by the server's loop."""
        loop = self._loop
        if loop is None or not self._clients:
            return
        if threading.get_ident() == self._loop_thread:
            self.publish(event)
        else:
            loop.call_soon_threadsafe(self._add, frame(event))

    def _add(self, text: str) -> None:
        self._pending.append(text)
        self._arm()

    def _arm(self) -> None:
        if self._flush_at is None and self._loop is not None:
            self._flush_at = self._loop.call_later(self.flush_s, self.flush)

    def flush(self) -> None:
        """Hands what was published since the last flush, as one batch, to every stream."""
        self._flush_at = None
        texts = self._pending + [frame(state()) for state in self._pools.values()]
        self._pending, self._pools = [], {}
        if not texts or not self._clients:
            return
        batch = "".join(texts).encode()
        for client in list(self._clients):
            if client.backlog_bytes + len(batch) > self.queue_bytes:
                self._drop(client)
                continue
            client.backlog.append(batch)
            client.backlog_bytes += len(batch)
            client.ready.set()

    def _drop(self, client: Subscriber) -> None:
        self._clients.discard(client)
        self.dropped += 1
        log.warning("event_stream_dropped", reason="client fell behind")
        client.dropped = True
        client.backlog.clear()
        client.ready.set()

    def subscribe(self) -> Subscriber:
        if len(self._clients) >= self.max_streams:
            raise TooManyStreams(f"at most {self.max_streams} event streams are served")
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        client = Subscriber()
        self._clients.add(client)
        return client

    def unsubscribe(self, client: Subscriber) -> None:
        self._clients.discard(client)

    async def stream(
        self, client: Subscriber, *, keepalive_s: float = 15.0
    ) -> AsyncIterator[bytes]:
        """The SSE body for one subscriber: `event: <type>` and `data: <json>` per event, a
        comment line now and then so proxies and the client see the stream is alive."""
        try:
            yield b": ygg events\n\n"
            while True:
                try:
                    async with asyncio.timeout(keepalive_s):
                        await client.ready.wait()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if client.dropped:
                    return
                yield client.take()  # one write for everything since the last
        finally:
            self.unsubscribe(client)


def frame(event: dict[str, Any]) -> str:
    """One SSE event: `event: <type>` and `data: <json>` (JSON escapes every line break)."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n"


def task_frame(
    task_id: int,
    status: str | None,
    pool: str | None = None,
    attempt: int | None = None,
    kind: str | None = None,
) -> str:
    """`frame(task_event(...))` of the fields given, several times faster: a busy daemon
    makes thousands a second, and a status's, a pool's and a kind's JSON never change."""
    text = f'event: task\ndata: {{"type":"task","id":{task_id:d},"status":{_JSON[status]}'
    if pool is not None:
        text += f',"pool":{_JSON[pool]}'
    if attempt is not None:
        text += f',"attempt":{attempt:d}'
    if kind is not None:
        text += f',"kind":{_JSON[kind]}'
    return text + "}\n\n"


class _Strings(dict[str | None, str]):
    """The JSON of each string an event repeats, encoded once (bounded: kinds are open)."""

    def __missing__(self, key: str | None) -> str:
        text = json.dumps(key, ensure_ascii=False)
        if len(self) < 4096:
            self[key] = text
        return text


_JSON = _Strings()


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
