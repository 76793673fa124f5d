"""The status endpoint: `/metrics` (Prometheus text), `/healthz` and `/status` (JSON).

A deliberately small HTTP/1.1 server on asyncio streams: GET only, one request per connection
(`Connection: close`), a bounded request head and a read timeout, so a slow or hostile client
can hold at most one connection (of a bounded number) for a few seconds and never the loop.
Stdlib streams instead of aiohttp: three read-only routes do not justify a framework dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from ygg.config.credentials import read_secret
from ygg.errors import ConfigError
from ygg.ops.metrics import CONTENT_TYPE, Metrics
from ygg.ops.snapshot import Snapshot

log = structlog.get_logger("ygg.ops")

TOKEN_ENV = "YGG_STATUS_TOKEN"
TOKEN_CREDENTIAL = "ygg-status-token"
MAX_REQUEST_BYTES = 8192  # request line and headers; GET has no body
READ_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 32
LINGER_BYTES = 65536  # read (and drop) what a refused client still sends, so it sees the answer
LINGER_S = 1.0

SnapshotFn = Callable[[], Awaitable[Snapshot]]
HealthyFn = Callable[[], bool]
_LISTEN = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d{1,5})|(?P<host>[^:\[\]\s]+):(?P<port>\d{1,5})"
)
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); ConfigError if malformed."""
    match = _LISTEN.fullmatch(listen.strip())
    port = int(match["port"] or match["p6"]) if match else -1
    if match is None or not 0 <= port <= 65535:
        raise ConfigError(
            f"daemon.status_listen must be HOST:PORT or [IPv6]:PORT with a port up to 65535, "
            f"not {listen!r}."
        )
    return match["v6"] or match["host"], port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def check_listen(listen: str, token: str | None) -> tuple[str, int]:
    """Validates `daemon.status_listen`: it must parse, and leave loopback only with a token."""
    host, port = parse_listen(listen)
    if not token and not is_loopback(host):
        raise ConfigError(
            f"daemon.status_listen {listen!r} is not a loopback address, so the status endpoint "
            f"needs a token: set {TOKEN_ENV} or the {TOKEN_CREDENTIAL} credential, or listen on "
            "127.0.0.1."
        )
    return host, port


def status_token() -> str | None:
    """The bearer token: $YGG_STATUS_TOKEN, else the credential file `ygg-status-token`
    (ConfigError if that file exists but cannot be read)."""
    token = os.environ.get(TOKEN_ENV, "").strip() or (read_secret(TOKEN_CREDENTIAL) or "").strip()
    return token or None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    extra: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        head = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.extra),
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def _text(status: int, text: str, *extra: tuple[str, str]) -> Response:
    return Response(status, (text + "\n").encode(), extra=extra)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


class BadRequest(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def parse_request(head: bytes) -> Request:
    """The request line and headers (up to the blank line) → Request; BadRequest if malformed."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise BadRequest(_text(400, "bad request line"))
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BadRequest(_text(400, "bad header line"))
        headers[name.strip().lower()] = value.strip()
    return Request(parts[0], parts[1].split("?", 1)[0], headers)


class StatusServer:
    """Serves the endpoint; `await start()`, read `port`, `await close()` when done."""

    def __init__(
        self,
        listen: str,
        token: str | None,
        snapshot: SnapshotFn,
        healthy: HealthyFn,
        metrics: Metrics,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.host, self.port = check_listen(listen, token)
        self._token = token.encode() if token else None
        self._snapshot, self._healthy, self._metrics = snapshot, healthy, metrics
        self._read_timeout_s = read_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[object]] = set()
        self._routes: dict[str, Callable[[], Awaitable[Response]]] = {
            "/metrics": self._get_metrics,
            "/healthz": self._get_healthz,
            "/status": self._get_status,
        }

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]  # the real one when asked for 0
        log.info("status_server_started", host=self.host, port=self.port, token=bool(self._token))

    async def close(self) -> None:
        """Stops listening and ends the connections still open (they are at most seconds old)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if len(self._connections) > MAX_CONNECTIONS:
                await self._send(writer, _text(503, "too many connections"))
            else:
                await self._serve_one(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled while we answered: nothing left to tell it
        except Exception:  # one bad request must not take the endpoint (or the daemon) down
            log.exception("status_request_crashed")
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._read_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
            response = await self._respond(parse_request(head))
        except TimeoutError:
            response = _text(408, "request not received in time")
        except asyncio.LimitOverrunError:
            response = _text(431, f"request head over {MAX_REQUEST_BYTES} bytes")
        except BadRequest as exc:
            response = exc.response
        await self._send(writer, response)
        if response.status >= 400:
            await self._linger(reader, writer)

    async def _respond(self, request: Request) -> Response:
        if self._token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self._token):
                return _text(401, "a bearer token is required", ("WWW-Authenticate", "Bearer"))
        if request.method != "GET":
            return _text(405, "only GET is served", ("Allow", "GET"))
        route = self._routes.get(request.path)
        return await route() if route else _text(404, "not found; try /metrics, /healthz, /status")

    async def _send(self, writer: asyncio.StreamWriter, response: Response) -> None:
        writer.write(response.encode())
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await writer.drain()

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Closing with unread input makes the kernel reset the connection, and the client may
        lose our answer; so half-close and drop what it still sends, for a bounded time."""
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(LINGER_S):
                dropped = 0
                while dropped < LINGER_BYTES and (chunk := await reader.read(4096)):
                    dropped += len(chunk)

    # --- routes --------------------------------------------------------------------------------
    async def _snapshot_or_none(self) -> Snapshot | None:
        try:
            return await self._snapshot()
        except Exception as exc:  # the store may be busy; say so rather than fail the scrape
            log.warning("status_snapshot_failed", error=repr(exc))
            return None

    async def _get_metrics(self) -> Response:
        snapshot = await self._snapshot_or_none()
        return Response(200, self._metrics.render(snapshot), CONTENT_TYPE)

    async def _get_healthz(self) -> Response:
        return _text(200, "ok") if self._healthy() else _text(503, "not making progress")

    async def _get_status(self) -> Response:
        snapshot = await self._snapshot_or_none()
        if snapshot is None:
            return _text(503, "status unavailable; see the daemon's log")
        body = json.dumps(snapshot, ensure_ascii=False).encode()
        return Response(200, body, "application/json")


async def start_status_server(
    listen: str, token: str | None, snapshot: SnapshotFn, healthy: HealthyFn, metrics: Metrics
) -> StatusServer:
    """Checks `listen`, binds and serves; ConfigError before binding if `listen` is refused."""
    server = StatusServer(listen, token, snapshot, healthy, metrics)
    await server.start()
    return server
