"""structlog set-up: stable snake_case event names, JSON off a terminal, console on one."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

import structlog


class _Timestamp:
    """ISO 8601 UTC with microseconds; the seconds part is formatted once per second, since
    structlog's own stamper costs as much as the rest of an event on the hot path."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now_ns = time.time_ns()
        second, micros = divmod(now_ns // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{micros:06d}Z"
        return event


# The attempt an event belongs to. One context variable holding a tuple is several times
# cheaper to set per attempt than structlog's one variable per key, and this is the hot path.
_ATTEMPT: ContextVar[tuple[int, str, int] | None] = ContextVar("ygg_attempt", default=None)
DEBUG = False  # whether debug events are emitted: lets the hot path skip building them


def bind_attempt(task_id: int, pool: str, attempt: int) -> Token[tuple[int, str, int] | None]:
    """Every event logged from this context on carries task_id, pool and attempt."""
    return _ATTEMPT.set((task_id, pool, attempt))


def unbind_attempt(token: Token[tuple[int, str, int] | None]) -> None:
    _ATTEMPT.reset(token)


def _merge_attempt(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    bound = _ATTEMPT.get()
    if bound is not None:
        event.setdefault("task_id", bound[0])
        event.setdefault("pool", bound[1])
        event.setdefault("attempt", bound[2])
    return event


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def escape_controls(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """On a terminal, text from a host or a task must not move the cursor, clear the screen or
    forge a log line. The console renderer quotes other values itself; the event and an
    exception's text it prints raw, so those are escaped here (JSON escapes everything)."""
    for key in ("event", "exception"):
        value = event.get(key)
        if isinstance(value, str) and _CONTROL.search(value):
            lines = value.split("\n")  # a traceback keeps its line breaks
            event[key] = "\n".join(_escape(line) for line in lines)
    return event


def configure(log_format: str = "auto", *, level: int | str = logging.INFO) -> None:
    global DEBUG
    if isinstance(level, str):
        level = logging.getLevelNamesMapping()[level.upper()]
    DEBUG = level <= logging.DEBUG
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _merge_attempt,
        structlog.processors.add_log_level,
        _Timestamp(),
        structlog.processors.format_exc_info,
    ]
    if as_json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors += [escape_controls, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
