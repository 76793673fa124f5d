"""The daemon's HTTP server: `/metrics`, `/healthz`, `/status`, the task API, its events and
the dashboard (ygg/ops/web/), served by uvicorn on the daemon's own event loop.

uvicorn and Starlette rather than a hand-written server: an API with bodies and a live page
need keep-alive, streaming and careful HTTP parsing, which h11 and uvicorn have been hardened
for. The limits stay: a bounded request head (431) and body (413), a deadline for the head
(408), a cap on concurrent connections and requests (503), idle keep-alive closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterator

import structlog
import uvicorn

from ygg.config.credentials import read_secret
from ygg.errors import ConfigError
from ygg.ops.metrics import Metrics
from ygg.ops.snapshot import Snapshot
from ygg.ops.web.app import Sources, build_app
from ygg.ops.web.events import EventHub
from ygg.ops.web.protocol import protocol_class
from ygg.ops.web.tasks import TaskApi

log = structlog.get_logger("ygg.ops")

TOKEN_ENV = "YGG_STATUS_TOKEN"
TOKEN_CREDENTIAL = "ygg-status-token"
MAX_REQUEST_BYTES = 16384  # request line and headers (a browser's fit); bodies: web.routes
READ_TIMEOUT_S = 5.0  # for a request's head, and again for its body
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 64  # uvicorn answers 503 beyond it; event streams are capped lower (32)
CLOSE_GRACE_S = 2

SnapshotFn = Callable[[], Awaitable[Snapshot]]
HealthyFn = Callable[[], bool]
ReasonFn = Callable[[], str | None]
_LISTEN = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d{1,5})|(?P<host>[^:\[\]\s]+):(?P<port>\d{1,5})"
)


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


class StatusServer:
    """Serves the app with uvicorn on the running loop; `await start()`, read `port`,
    `await close()` when done. The daemon owns the signals: uvicorn installs no handlers."""

    def __init__(
        self,
        listen: str,
        token: str | None,
        snapshot: SnapshotFn,
        healthy: HealthyFn,
        metrics: Metrics,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
        tasks: TaskApi | None = None,
        events: EventHub | None = None,
        unhealthy_reason: ReasonFn | None = None,
    ) -> None:
        self.host, self.port = check_listen(listen, token)
        self._token = token
        sources = Sources(snapshot, healthy, metrics, tasks, events, unhealthy_reason)
        app = build_app(token, sources, read_timeout_s=read_timeout_s)
        self._config = uvicorn.Config(
            app,
            loop="none",
            lifespan="off",
            http=protocol_class(read_timeout_s),
            log_config=None,
            access_log=False,
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=CLOSE_GRACE_S,
            h11_max_incomplete_event_size=MAX_REQUEST_BYTES,
        )
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = _bind(self.host, self.port)  # an OSError (address taken) surfaces here
        self.port = sock.getsockname()[1]  # the real one when asked for 0
        server = self._server = _Server(self._config)
        self._serving = asyncio.create_task(server.serve([sock]), name="status_server")
        while not server.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped it
                raise OSError(f"the status server on port {self.port} stopped while starting")
            await asyncio.sleep(0.005)
        log.info("status_server_started", host=self.host, port=self.port, token=bool(self._token))

    @property
    def serving(self) -> asyncio.Task[None] | None:
        """The task serving requests: it ends only when `close()` is called, or on a crash."""
        return self._serving

    async def close(self) -> None:
        """Stops listening and ends the open connections (event streams included)."""
        if self._server is None or self._serving is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True  # open event streams would otherwise hold the stop
        try:
            await self._serving
        finally:
            self._server = self._serving = None


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's signal handlers stay in place


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "localhost":
        host = "127.0.0.1"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def start_status_server(
    listen: str,
    token: str | None,
    snapshot: SnapshotFn,
    healthy: HealthyFn,
    metrics: Metrics,
    *,
    tasks: TaskApi | None = None,
    events: EventHub | None = None,
    unhealthy_reason: ReasonFn | None = None,
) -> StatusServer:
    """Checks `listen`, binds and serves; ConfigError before binding if `listen` is refused."""
    server = StatusServer(
        listen,
        token,
        snapshot,
        healthy,
        metrics,
        tasks=tasks,
        events=events,
        unhealthy_reason=unhealthy_reason,
    )
    await server.start()
    return server
