"""A fake GPU host: a real HTTP/1.1 server on 127.0.0.1 that speaks Ollama or OpenAI.

    with FakeHost("ollama") as host:
        host.script(Step(status=503, retry_after="1"), Step(action="reset"))
        ...  # point a pool at host.url
        assert host.wait_for_requests(3, timeout_s=2)
        assert host.max_in_flight <= 2

Chat requests consume scripted steps in order, then `host.default`. A user message containing
`sleep=0.25` makes that request wait 0.25 s before answering. Waits end early on stop() or when
the client goes away, and then the connection is dropped without an answer.
`Step(encoding="gzip")` compresses the answer (see tests/support/encodings.py).
`host.serve("/api/ps", {...})` answers GETs of that path with a fixed body (JSON for a dict or
list, else text): what a test host says of its load (tests/support/telemetry.py has payloads).

A request asking for a stream (`stream: true`, as ygg asks) is answered token by token, framed
as real hosts frame it (tests/support/streams.py): `host.first_token_s` before the first token,
`host.token_gap_s` between tokens. `Step(stream=False)` answers one JSON document anyway.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import itertools
import json
import math
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Literal, cast

from tests.support import streams
from tests.support.encodings import Encoding, compress, header_value
from ygg.backends.base import AttemptFailed
from ygg.backends.host_model import HostModel

Protocol = Literal["ollama", "openai"]
Action = Literal["reply", "reset", "hang", "trickle", "redirect"]

TICK_S = 0.02  # how often a waiting handler looks for stop() or a vanished client
TRICKLE_DEFAULT_S = 0.1
TRICKLE_LENGTH = 1_000_000
STOP_TIMEOUT_S = 2.0
SLEEP_TOKEN = re.compile(r"\bsleep=(\d+(?:\.\d+)?)")

CHAT_PATHS: dict[Protocol, tuple[str, ...]] = {
    "ollama": ("/api/chat",),
    "openai": ("/chat/completions", "/v1/chat/completions"),
}
INFO_PATHS: dict[Protocol, dict[str, object]] = {
    "ollama": {"/api/version": {"version": "0.5.0"}},
    "openai": {"/models": {"data": [{"id": "m"}]}, "/v1/models": {"data": [{"id": "m"}]}},
}


@dataclass(frozen=True)
class Step:
    """One scripted behaviour for one chat request."""

    status: int = 200
    delay_s: float = 0.0
    retry_after: str | float | None = None
    body: bytes | None = None  # raw bytes sent instead of the protocol's body
    action: Action = "reply"
    encoding: Encoding | None = None  # the answer compressed, with its Content-Encoding
    headers: tuple[tuple[str, str], ...] = ()  # sent as they are, e.g. a Content-Encoding
    stream: bool = True  # False: one JSON document even when the request asks for a stream


@dataclass
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when empty or not JSON
    start: float  # time.monotonic() once the body was read
    end: float | None = None  # time.monotonic() once answered or dropped
    status: int | None = None  # None when no answer was sent


class FakeHost:
    def __init__(self, protocol: Protocol = "ollama", *, api_key: str | None = None) -> None:
        if protocol not in CHAT_PATHS:
            raise ValueError(f"unknown protocol {protocol!r}")
        self.protocol: Protocol = protocol
        self.api_key = api_key  # when set (OpenAI), requests need "Authorization: Bearer <key>"
        self.default = Step()
        # A streamed answer's pace: before its first token, and between two tokens.
        self.first_token_s = 0.0
        self.token_gap_s = 0.0
        # Set, the host answers as an LLM host under load does (ygg/backends/host_model.py):
        # each reply's delay is work shared with the requests beside it, and past capacity
        # a 503 (or a slowdown).
        self.load_model: HostModel | None = None
        self._lock = threading.RLock()  # re-entrant: wait_for's predicate reads properties
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._steps: collections.deque[Step] = collections.deque()
        self._requests: list[RequestRecord] = []
        self._chat_count = 0
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._max_in_flight = 0
        self._max_by_model: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._served: dict[str, tuple[int, str, bytes]] = {}  # path -> (status, type, body)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # lifecycle

    def start(self) -> FakeHost:
        if self._server is not None:
            raise RuntimeError("FakeHost already started")
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fakehost-{self.protocol}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ends every wait, closes every connection and joins the threads (bounded)."""
        server, thread = self._server, self._thread
        if server is None or thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        server.shutdown()
        thread.join(STOP_TIMEOUT_S)
        server.close_all(deadline=time.monotonic() + STOP_TIMEOUT_S)

    def __enter__(self) -> FakeHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # scripting

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def serve(self, path: str, body: object, status: int = 200) -> None:
        """GET `path` answers `body` from now on: JSON for a dict or list, bytes as they are,
        anything else as text. Routes of their own, beside the protocol's."""
        if isinstance(body, dict | list):
            answer = ("application/json", json.dumps(body).encode())
        elif isinstance(body, bytes):
            answer = ("application/octet-stream", body)
        else:
            answer = ("text/plain; version=0.0.4; charset=utf-8", str(body).encode())
        with self._lock:
            self._served[path] = (status, *answer)

    def unserve(self, path: str) -> None:
        with self._lock:
            self._served.pop(path, None)

    def _served_at(self, path: str) -> tuple[int, str, bytes] | None:
        with self._lock:
            return self._served.get(path)

    # observations, all read under the lock

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RequestRecord]:
        paths = CHAT_PATHS[self.protocol]
        return [r for r in self.requests if r.path in paths]

    @property
    def chat_count(self) -> int:
        with self._lock:
            return self._chat_count

    @property
    def in_flight(self) -> int:
        """Chat requests taken and not yet answered: lowered before an answer is written, so a
        client holding its answer never finds its own request still counted."""
        with self._lock:
            return self._in_flight.total()

    @property
    def open_connections(self) -> int:
        """TCP connections the host has accepted and not yet seen closed."""
        with self._lock:
            return len(self._server.connections) if self._server is not None else 0

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def max_in_flight_by_model(self) -> dict[str, int]:
        with self._lock:
            return dict(self._max_by_model)

    def wait_for(self, predicate: Callable[[FakeHost], bool], timeout_s: float) -> bool:
        """Waits until predicate(host) holds; it is re-checked whenever a request starts or ends
        and whenever a connection closes."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout_s)

    def wait_for_requests(self, n: int, timeout_s: float) -> bool:
        """Waits until at least n chat requests have arrived (health probes do not count)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._chat_count >= n, timeout_s)

    # bookkeeping for the handler

    def _record(self, record: RequestRecord) -> None:
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()

    def _finish(self, record: RequestRecord, status: int | None) -> None:
        with self._changed:
            record.end, record.status = time.monotonic(), status
            self._changed.notify_all()

    def _begin_chat(self, model: str) -> Step:
        with self._changed:
            step = self._steps.popleft() if self._steps else self.default
            self._chat_count += 1
            self._in_flight[model] += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight.total())
            self._max_by_model[model] = max(
                self._max_by_model.get(model, 0), self._in_flight[model]
            )
            self._changed.notify_all()
            return step

    def _end_chat(self, model: str) -> None:
        with self._changed:
            self._in_flight[model] -= 1
            self._changed.notify_all()

    # bodies in the protocol's shape

    def _reply(self, payload: dict[str, Any]) -> dict[str, Any]:
        messages = payload.get("messages")
        messages = messages if isinstance(messages, list) else []
        content = "echo: " + _last_user_content(messages)
        model = str(payload.get("model", ""))
        prompt_tokens = sum(_words(m.get("content")) for m in messages if isinstance(m, dict))
        if self.protocol == "ollama":
            return {
                "model": model,
                "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
                "message": {"role": "assistant", "content": content},
                "done": True,
                "prompt_eval_count": prompt_tokens,
                "eval_count": _words(content),
            }
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": _words(content),
                "total_tokens": prompt_tokens + _words(content),
            },
        }

    def _error(self, status: int, message: str) -> dict[str, Any]:
        if self.protocol == "ollama":
            return {"error": message}
        kind = (
            "rate_limit_error"
            if status == 429
            else "server_error"
            if status >= 500
            else "authentication_error"
            if status == 401
            else "invalid_request_error"
        )
        return {"error": {"message": message, "type": kind}}


def _prompt_tokens(reply: dict[str, Any]) -> int:
    if "usage" in reply:
        return int(reply["usage"]["prompt_tokens"])
    return int(reply["prompt_eval_count"])


def _words(text: object) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _last_user_content(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _requested_sleep(payload: dict[str, Any]) -> float:
    messages = payload.get("messages")
    match = SLEEP_TOKEN.search(_last_user_content(messages if isinstance(messages, list) else []))
    return float(match.group(1)) if match else 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() joins the handler threads itself, with a deadline
    request_queue_size = 128

    def __init__(self, host: FakeHost) -> None:
        self.fake = host
        self.connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # skips HTTPServer's getfqdn(), which may do DNS
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        assert isinstance(request, socket.socket)
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self.fake._lock:
            self.connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.fake._changed:
                self.connections.pop(request, None)
                self.fake._changed.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.fake._stopping.is_set():
            super().handle_error(request, client_address)

    def close_all(self, deadline: float) -> None:
        with self.fake._lock:
            connections = dict(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # wakes handlers blocked reading the next request
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()
        for thread in connections.values():
            thread.join(max(deadline - time.monotonic(), 0.0))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real hosts

    @property
    def fake(self) -> FakeHost:
        return cast(_Server, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._counted: str | None = None  # the model of the chat request counted in flight
        self._encoding: Encoding | None = None  # how the chat answer is compressed, if it is
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        record = RequestRecord(
            self.command,
            path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            time.monotonic(),
        )
        self.fake._record(record)
        self._current = record
        status: int | None = None
        try:
            status = self._route(path, body)
        except OSError:  # the client went away while we wrote
            self.close_connection = True
        finally:
            if status is None or record.end is None:  # not already marked by _answering
                self.fake._finish(record, status)

    def _route(self, path: str, body: Any) -> int | None:
        """Answers the request; returns the status sent, or None if none was."""
        host = self.fake
        served = host._served_at(path)
        if served is not None and self.command == "GET":
            return self._send_served(*served)
        info = INFO_PATHS[host.protocol]
        chat = path in CHAT_PATHS[host.protocol]
        if not chat and path not in info:
            return self._json(404, host._error(404, f"no route for {path}"))
        if self.command != ("POST" if chat else "GET"):
            return self._json(405, host._error(405, f"{self.command} not allowed on {path}"))
        if host.api_key and self.headers.get("authorization") != f"Bearer {host.api_key}":
            return self._json(401, host._error(401, "invalid api key"))
        if not chat:
            return self._json(200, info[path])
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._json(400, host._error(400, "body must be JSON with a messages list"))
        model = str(body.get("model", ""))
        step = host._begin_chat(model)
        self._counted = model
        try:
            return self._perform(step, body)
        finally:
            self._uncount()

    def _uncount(self) -> None:
        """Ends this request's in-flight count, once. Called before a complete answer (or a
        reset) goes out: a client that has its answer must find the count already lowered."""
        if self._counted is not None:
            model, self._counted = self._counted, None
            self.fake._end_chat(model)

    def _answering(self, status: int) -> None:
        """Books the answer before it is written, for the same reason as _uncount."""
        self._uncount()
        self.fake._finish(self._current, status)

    def _perform(self, step: Step, payload: dict[str, Any]) -> int | None:
        host = self.fake
        extra = {} if step.retry_after is None else {"Retry-After": _retry_after(step.retry_after)}
        extra.update(step.headers)
        self._encoding = step.encoding
        if step.action == "reset":
            self._reset()
            return None
        if step.action == "hang":
            self._pause(math.inf)
            self.close_connection = True
            return None
        if step.action == "trickle":
            self._trickle(step.delay_s or TRICKLE_DEFAULT_S)
            return None
        if step.action == "redirect":
            status = step.status if 300 <= step.status < 400 else 302
            return self._send(status, b"", {"Location": f"{host.url}/api/chat", **extra})
        work_s = step.delay_s + _requested_sleep(payload)
        if host.load_model is not None and 200 <= step.status < 300:
            return self._perform_loaded(host.load_model, work_s, payload, extra, step)
        if not self._pause(work_s):
            self.close_connection = True
            return None
        if step.body is not None:
            return self._send(step.status, step.body, extra)
        if 200 <= step.status < 300:
            return self._answer(step, payload, extra)
        return self._json(
            step.status, host._error(step.status, f"scripted HTTP {step.status}"), extra
        )

    def _perform_loaded(
        self,
        model: HostModel,
        work_s: float,
        payload: dict[str, Any],
        extra: dict[str, str],
        step: Step,
    ) -> int | None:
        host = self.fake
        try:
            model.enter()
        except AttemptFailed:
            return self._json(503, host._error(503, "at capacity"), extra)
        try:
            while work_s > 1e-9:
                sleep_s, done = model.step_s(work_s)
                if not self._pause(sleep_s):
                    self.close_connection = True
                    return None
                work_s -= done
        finally:
            model.leave()
        return self._answer(step, payload, extra)

    def _answer(self, step: Step, payload: dict[str, Any], extra: dict[str, str]) -> int | None:
        """A successful answer: streamed if the request asked for it and the step allows."""
        host = self.fake
        if not (step.stream and payload.get("stream") is True):
            return self._json(step.status, host._reply(payload), extra)
        reply = host._reply(payload)
        content = str(
            reply["message"]["content"]
            if host.protocol == "ollama"
            else reply["choices"][0]["message"]["content"]
        )
        prompt_tokens = _prompt_tokens(reply)
        framed = streams.frames(host.protocol, payload, content, prompt_tokens)
        return self._stream(step.status, framed, extra)

    def _stream(self, status: int, framed: streams.Frames, headers: dict[str, str]) -> int | None:
        """Sends the frames with chunked transfer encoding, paced by the host's delays;
        None (and the connection dropped) if the client goes away or the host stops."""
        host = self.fake
        squeeze = None
        if self._encoding is not None:
            squeeze = streams.compressor(self._encoding)
            headers = {**headers, "Content-Encoding": header_value(self._encoding)}
        self.send_response(status)
        self.send_header("Content-Type", streams.CONTENT_TYPES[host.protocol])
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        paced = [(0.0, frame) for frame in framed.head]
        for i, frame in enumerate(framed.tokens):
            paced.append((host.first_token_s if i == 0 else host.token_gap_s, frame))
        paced.extend((0.0, frame) for frame in framed.tail)
        for i, (pause_s, frame) in enumerate(paced):
            if pause_s and not self._pause(pause_s):
                self.close_connection = True
                return None
            last = i == len(paced) - 1
            if last:
                self._answering(status)  # booked before the client can have it all
            data = frame if squeeze is None else squeeze(frame, last)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        return status

    # writing

    def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> int:
        return self._send(status, json.dumps(data).encode(), headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> int:
        if self._encoding is not None:
            body = compress(body, self._encoding)
            headers = {**(headers or {}), "Content-Encoding": header_value(self._encoding)}
        self._answering(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        return status

    def _send_served(self, status: int, content_type: str, body: bytes) -> int:
        self._answering(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return status

    def _reset(self) -> None:
        """Closes the socket with SO_LINGER 0: the client gets a RST, not a FIN."""
        self._uncount()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        fd = self.connection.detach()  # later closes by the server become no-ops
        socket.close(fd)
        self.close_connection = True

    def _trickle(self, interval_s: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(TRICKLE_LENGTH))
        self.end_headers()
        self.close_connection = True
        for _ in range(TRICKLE_LENGTH):
            if not self._pause(interval_s):
                return
            self.wfile.write(b" ")

    # waiting

    def _pause(self, seconds: float) -> bool:
        """Sleeps; False if cut short by stop() or by the client going away."""
        deadline = time.monotonic() + seconds
        while not self._client_gone():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self.fake._stopping.wait(min(remaining, TICK_S)):
                return False
        return False

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


def _retry_after(value: str | float) -> str:
    return value if isinstance(value, str) else str(math.ceil(value))
