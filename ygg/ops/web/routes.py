"""The `/api` routes: JSON in and out, errors as `{"error": "one sentence"}`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ygg.errors import InvalidInput, StoreUnavailable, TaskNotFound
from ygg.ops.web import history
from ygg.ops.web.events import EventHub, TooManyStreams
from ygg.ops.web.tasks import TaskApi

log = structlog.get_logger("ygg.ops")
MAX_BODY_BYTES = 2 * 1024 * 1024
Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def plain_text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(text + "\n", status, headers, "text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, {"Cache-Control": "no-store"})


def answers(handler: Handler) -> Handler:
    """Turns ygg's errors into the API's status codes."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except HttpError as exc:
            return error(exc.status, str(exc))
        except TaskNotFound as exc:
            return error(404, exc.message)
        except InvalidInput as exc:
            return error(400, exc.message)
        except StoreUnavailable as exc:
            return error(503, f"The queue is busy; try again. ({exc.message})")

    return wrapped


def conflicts(
    action: Callable[[int], Awaitable[dict[str, Any]]], events: EventHub | None
) -> Handler:
    """cancel and retry: an unknown task is 404, a status that does not allow it 409."""

    async def handler(request: Request) -> Response:
        task_id = _task_id(request)
        try:
            task = await action(task_id)
        except TaskNotFound:
            raise
        except InvalidInput as exc:
            raise HttpError(409, exc.message) from None
        if events is not None:
            events.publish_task(task["id"], task["status"], kind=task["kind"])
        return JSONResponse(task)

    return handler


def _task_id(request: Request) -> int:
    text = request.path_params["task_id"]
    if not text.isdigit() or len(text) > 19:
        raise TaskNotFound(f"No task {text}.")
    return int(text)


async def read_json(request: Request, read_timeout_s: float) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HttpError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    try:
        async with asyncio.timeout(read_timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise HttpError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    except TimeoutError:
        raise HttpError(408, "The body was not received in time.") from None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HttpError(400, f"The body is not valid JSON: {exc}.") from None


def api_routes(
    tasks: TaskApi | None, events: EventHub | None, *, read_timeout_s: float
) -> list[BaseRoute]:
    if tasks is None:
        return []

    async def status(request: Request) -> Response:
        # No health probe unless asked: the page polls this, and a probe waits on every host.
        probe = request.query_params.get("probe", "0") not in ("0", "", "false", "no")
        return JSONResponse(await tasks.status(probe=probe))

    async def list_tasks(request: Request) -> Response:
        query = request.query_params
        limit = query.get("limit") or "100"
        if not limit.isdigit():
            raise InvalidInput(f"The limit must be a whole number, not {limit!r}.")
        found = await tasks.list_tasks(query.get("status"), query.get("kind"), int(limit))
        return JSONResponse(found)

    async def show(request: Request) -> Response:
        return JSONResponse(await tasks.get(_task_id(request)))

    async def submit(request: Request) -> Response:
        try:
            task = await tasks.submit(await read_json(request, read_timeout_s))
        except TaskNotFound as exc:  # a missing dependency: the input is wrong, not the path
            raise HttpError(400, exc.message) from None
        return JSONResponse(task, 201)  # its event went out before the daemons were woken

    cancel, retry = conflicts(tasks.cancel, events), conflicts(tasks.retry, None)
    routes: list[BaseRoute] = [
        Route("/api/status", answers(status), methods=["GET"]),
        Route("/api/tasks", answers(list_tasks), methods=["GET"]),
        Route("/api/tasks", answers(submit), methods=["POST"]),
        Route("/api/tasks/{task_id}", answers(show), methods=["GET"]),
        Route("/api/tasks/{task_id}/cancel", answers(cancel), methods=["POST"]),
        Route("/api/tasks/{task_id}/retry", answers(retry), methods=["POST"]),
        *history_routes(tasks),
    ]
    if events is not None:
        routes.append(Route("/api/events", _events_route(events), methods=["GET"]))
    return routes


def history_routes(tasks: TaskApi) -> list[BaseRoute]:
    """The dashboard's look back: the last hour per pool, and the timeline's attempts."""

    async def look_back(request: Request) -> Response:
        minutes = history.minutes_of(request.query_params.get("minutes"), 60)
        return JSONResponse(await tasks.history(minutes))

    async def timeline(request: Request) -> Response:
        minutes = history.minutes_of(request.query_params.get("minutes"), 10)
        return JSONResponse(await tasks.timeline(minutes))

    return [
        Route("/api/history", answers(look_back), methods=["GET"]),
        Route("/api/timeline", answers(timeline), methods=["GET"]),
    ]


def _events_route(events: EventHub) -> Handler:
    async def stream(request: Request) -> Response:
        try:
            client = events.subscribe()
        except TooManyStreams as exc:
            return error(503, f"Too many event streams: {exc}.")
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events.stream(client), 200, headers, "text/event-stream")

    return stream
