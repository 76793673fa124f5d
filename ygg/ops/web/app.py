"""The Starlette app: `/metrics`, `/healthz`, `/status`, the task API, events and the dashboard.

Access rules (CONTRACT.md, "HTTP API and dashboard"): with a token configured every request
but the dashboard's page needs `Authorization: Bearer <token>`; every `POST` needs it always,
and without a configured token is refused with 403. The page itself holds no data, so a
browser can load it and then ask its user for the token. No CORS headers, no cookies.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ygg.ops.metrics import CONTENT_TYPE, Metrics
from ygg.ops.snapshot import Snapshot
from ygg.ops.web.events import EventHub
from ygg.ops.web.routes import api_routes, plain_text
from ygg.ops.web.tasks import TaskApi

log = structlog.get_logger("ygg.ops")
TOKEN_HINT = (
    "writes need a token: set YGG_STATUS_TOKEN in the daemon's environment or the "
    "ygg-status-token credential, restart the daemon, and send Authorization: Bearer <token>"
)
OPEN_PATHS = frozenset({"/"})  # the page: static, holds no data
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
MAX_HEAD_BYTES = 16384  # h11 bounds a head that arrives in pieces; this, one that arrives whole


@dataclass(frozen=True)
class Sources:
    """What the app serves from: the daemon's own view and, where the store is at hand, the
    task API and the event hub."""

    snapshot: Callable[[], Awaitable[Snapshot]]
    healthy: Callable[[], bool]
    metrics: Metrics
    tasks: TaskApi | None = None
    events: EventHub | None = None
    # Why /healthz answers 503 (say, the database is out of reach); None: a generic reason.
    unhealthy_reason: Callable[[], str | None] | None = None


class Guard:
    """The token rules, before any routing (so an unknown path says 401, not 404)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        head_bytes = len(scope["raw_path"]) + len(scope["query_string"])
        head_bytes += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if head_bytes > MAX_HEAD_BYTES:
            return plain_text(431, f"request head over {MAX_HEAD_BYTES} bytes")
        is_post = scope["method"] == "POST"
        if self.token is None:
            return plain_text(403, TOKEN_HINT) if is_post else None
        if not is_post and scope["path"] in OPEN_PATHS:
            return None
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, value = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token):
            return None
        return plain_text(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})


def build_app(token: str | None, sources: Sources, *, read_timeout_s: float) -> ASGIApp:
    async def dashboard(request: Request) -> Response:
        page = files("ygg.ops.web").joinpath("dashboard.html").read_bytes()
        return _no_store(Response(page, 200, None, "text/html; charset=utf-8"))

    async def not_found(request: Request, exc: Exception) -> Response:
        return plain_text(404, "not found; try /, /api/status, /metrics, /healthz, /status")

    routes = [
        *status_routes(sources),
        Route("/", dashboard, methods=["GET"]),
        *api_routes(sources.tasks, sources.events, read_timeout_s=read_timeout_s),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    return Guard(app, token)


def status_routes(sources: Sources) -> list[Route]:
    """The three routes the endpoint always had: GET only, each answer closes the connection."""

    async def only_get(request: Request, handler: Callable[[], Awaitable[Response]]) -> Response:
        if request.method != "GET":
            return plain_text(405, "only GET is served", {"Allow": "GET"})
        response = await handler()
        response.headers["Connection"] = "close"  # as scrapers of this endpoint always had it
        return response

    async def get_metrics(request: Request) -> Response:
        async def handler() -> Response:
            snapshot = await _snapshot_or_none(sources)
            return _no_store(Response(sources.metrics.render(snapshot), 200, None, CONTENT_TYPE))

        return await only_get(request, handler)

    async def get_healthz(request: Request) -> Response:
        async def handler() -> Response:
            return _health_answer(sources)

        return await only_get(request, handler)

    async def get_status(request: Request) -> Response:
        async def handler() -> Response:
            snapshot = await _snapshot_or_none(sources)
            if snapshot is None:
                return plain_text(503, "status unavailable; see the daemon's log")
            body = json.dumps(snapshot, ensure_ascii=False).encode()
            return _no_store(Response(body, 200, None, "application/json"))

        return await only_get(request, handler)

    return [
        Route("/metrics", get_metrics, methods=ANY_METHOD),
        Route("/healthz", get_healthz, methods=ANY_METHOD),
        Route("/status", get_status, methods=ANY_METHOD),
    ]


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _health_answer(sources: Sources) -> Response:
    if sources.healthy():
        return plain_text(200, "ok")
    why = sources.unhealthy_reason() if sources.unhealthy_reason else None
    return plain_text(503, why or "not making progress")


async def _snapshot_or_none(sources: Sources) -> Snapshot | None:
    try:
        return await sources.snapshot()
    except Exception as exc:  # the store may be busy; say so rather than fail the scrape
        log.warning("status_snapshot_failed", error=repr(exc))
        return None
