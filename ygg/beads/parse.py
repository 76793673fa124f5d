"""Reading a Beads `issues.jsonl`: one JSON object per line, tolerant of every known variant.

Pure: bytes in, issues and per-line problems out. A malformed line is reported with its number
and skipped; nothing here raises for bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ygg.store.model import MAX_PRIORITY, US

DEFAULT_PRIORITY = 2  # what `bd create` uses when no priority is given
DEFAULT_EDGE_TYPE = "blocks"  # `bd dep add` without --type
_TEXT_FIELDS = ("description", "design", "acceptance_criteria", "notes")
# Go's time.Time marshals with up to nine fractional digits; Python takes at most six.
_TIMESTAMP = re.compile(
    r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$", re.IGNORECASE
)


@dataclass(frozen=True)
class Edge:
    """A dependency stored on the dependent issue: it depends on `target`."""

    target: str
    type: str


@dataclass(frozen=True)
class Issue:
    id: str
    line: int
    title: str
    status: str
    priority: int
    issue_type: str = "task"
    description: str = ""
    design: str = ""
    acceptance_criteria: str = ""
    notes: str = ""
    labels: tuple[str, ...] = ()
    edges: tuple[Edge, ...] = ()
    ephemeral: bool = False
    defer_until_us: int | None = None


@dataclass(frozen=True)
class LineProblem:
    """Something wrong on one line: a skipped line, or a value that was replaced."""

    line: int
    message: str
    issue_id: str | None = None

    def text(self) -> str:
        where = f"line {self.line}" + (f" ({self.issue_id})" if self.issue_id else "")
        return f"{where}: {self.message}"


@dataclass
class Parsed:
    issues: list[Issue] = field(default_factory=list)
    malformed: list[LineProblem] = field(default_factory=list)  # lines skipped entirely
    notes: list[LineProblem] = field(default_factory=list)  # issues kept, a value replaced
    other_records: int = 0  # well-formed lines that are not issues (`"_type": "memory"`)
    lines: int = 0


class _Malformed(Exception):
    pass


def parse_lines(lines: Iterable[bytes | str]) -> Parsed:
    """Parses an export line by line (line numbers start at 1; blank lines are ignored)."""
    parsed = Parsed()
    for number, raw in enumerate(lines, start=1):
        parsed.lines = number
        try:
            record = _decode(raw, first=number == 1)
            if record is None:
                continue
            if record.get("_type", "issue") != "issue":
                parsed.other_records += 1
                continue
            issue, notes = _issue(record, number)
        except _Malformed as exc:
            parsed.malformed.append(LineProblem(number, str(exc)))
            continue
        parsed.issues.append(issue)
        parsed.notes.extend(LineProblem(number, note, issue.id) for note in notes)
    return parsed


def _decode(raw: bytes | str, *, first: bool) -> dict[str, Any] | None:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed("not UTF-8 text; line skipped") from None
    if first:
        raw = raw.removeprefix("\ufeff")  # a byte-order mark some editors add
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise _Malformed(f"not valid JSON ({reason}); line skipped") from None
    if not isinstance(record, dict):
        raise _Malformed("not a JSON object; line skipped")
    return record


def _issue(record: dict[str, Any], line: int) -> tuple[Issue, list[str]]:
    issue_id = record.get("id")
    if not isinstance(issue_id, str) or not issue_id.strip():
        raise _Malformed("has no issue id; line skipped")
    title = record.get("title")
    if not isinstance(title, str):
        raise _Malformed(f"issue {issue_id} has no title text; line skipped")
    notes: list[str] = []
    priority = _priority(record.get("priority"), notes)
    texts = {name: _text(record.get(name), name, notes) for name in _TEXT_FIELDS}
    issue = Issue(
        id=issue_id,
        line=line,
        title=title,
        status=_text(record.get("status"), "status", notes) or "open",
        priority=priority,
        issue_type=_text(record.get("issue_type"), "issue_type", notes) or "task",
        labels=_labels(record.get("labels")),
        edges=_edges(record.get("dependencies"), notes),
        ephemeral=record.get("ephemeral") is True,
        defer_until_us=_defer_until(record.get("defer_until"), notes),
        **texts,
    )
    return issue, notes


def _text(value: Any, name: str, notes: list[str]) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    notes.append(f"{name} is not text; ignored")
    return ""


def _priority(value: Any, notes: list[str]) -> int:
    if value is None:
        notes.append(f"no priority; using {DEFAULT_PRIORITY}")
        return DEFAULT_PRIORITY
    if isinstance(value, bool) or not isinstance(value, int):
        notes.append(f"priority {value!r} is not a number 0-4; using {DEFAULT_PRIORITY}")
        return DEFAULT_PRIORITY
    clamped = min(max(value, 0), MAX_PRIORITY)
    if clamped != value:
        notes.append(f"priority {value} is outside 0-4; using {clamped}")
    return clamped


def _labels(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(label for label in value if isinstance(label, str))


def _edges(value: Any, notes: list[str]) -> tuple[Edge, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        notes.append("dependencies is not a list; ignored")
        return ()
    edges = []
    for item in value:
        target = item.get("depends_on_id") if isinstance(item, dict) else None
        if not isinstance(target, str) or not target:
            notes.append("a dependency without depends_on_id; ignored")
            continue
        edge_type = item.get("type")
        edges.append(Edge(target, edge_type if isinstance(edge_type, str) else DEFAULT_EDGE_TYPE))
    return tuple(edges)


def _defer_until(value: Any, notes: list[str]) -> int | None:
    if value is None or value == "":
        return None
    stamp = parse_timestamp_us(value) if isinstance(value, str) else None
    if stamp is None:
        notes.append(f"defer_until {value!r} is not a timestamp; ignored")
    return stamp or None  # the zero time means "unset"


def parse_timestamp_us(text: str) -> int | None:
    """Microseconds since the epoch; 0 for Go's zero time; None if `text` is not a timestamp.

    Accepts `Z`, numeric offsets (with or without a colon), no zone (taken as UTC) and any
    number of fractional digits (nanoseconds are truncated to microseconds).
    """
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    if day.startswith("0001-01-01"):
        return 0
    zone = "+00:00" if zone is None or zone.upper() == "Z" else zone
    if ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    micro = (fraction or "")[:6].ljust(6, "0")
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}")
    except ValueError:
        return None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = moment - epoch
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds
