"""What the store hands out: tasks, claims and the vocabulary of statuses.

Value types are NamedTuples, not dataclasses: every `ygg submit` loads them, and a dataclass
costs about ten times as much to create (and `import dataclasses` more still).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from enum import StrEnum  # `re` imports enum already: free

from ygg.record import Record

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from typing import Any, Literal

    BreakerPhase = Literal["closed", "open", "half-open"]


class Status(StrEnum):
    """A task's status (CONTRACT.md). A str: it compares, prints and serialises as its value."""

    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"


STATUSES = tuple(Status)
FINISHED = (Status.DONE, Status.FAILED, Status.CANCELLED, Status.BLOCKED)
MAX_PRIORITY = 4

US = 1_000_000
MAX_COUNT = 2**63 - 1  # the largest integer either engine stores
_UNSTORABLE = "[\x00\ud800-\udfff]"  # NUL, lone UTF-16 surrogates (compiled on first use)


def now_us() -> int:
    return time.time_ns() // 1000


def decode_json(text: str) -> Any:
    """`json.loads(text)`; the values most rows hold (no params, no dependencies) are answered
    without importing json, a tenth of `ygg list`'s start-up."""
    if text == "{}":
        return {}
    if text == "[]":
        return []
    import json

    return json.loads(text)


def encode_json(value: Any) -> str:
    """`json.dumps(value)`, with `{}` written without importing json (see decode_json)."""
    if isinstance(value, dict) and not value:
        return "{}"
    import json

    return json.dumps(value)


def iso(us: int | None) -> str | None:
    """ISO 8601 UTC with microseconds, as the contract prints every timestamp."""
    from datetime import UTC, datetime  # here: most commands never print a time

    if us is None:
        return None
    return datetime.fromtimestamp(us / US, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def storable_text(text: str) -> str:
    """`text` as every engine can keep it: a lone surrogate (JSON may carry "\\ud83d") or a
    NUL becomes U+FFFD. Text that is already storable is returned as it is."""
    return re.sub(_UNSTORABLE, "\ufffd", text) if re.search(_UNSTORABLE, text) else text


def storable_count(value: int | None) -> int | None:
    """A token count as stored: None for a count no engine can keep (negative, > 2**63-1)."""
    return value if value is not None and 0 <= value <= MAX_COUNT else None


def storable_us(seconds: float | None) -> int | None:
    """A duration as stored, in microseconds: None for one that is unknown or impossible
    (negative, not a number, past what an engine keeps)."""
    if seconds is None or not 0 <= seconds < MAX_COUNT / US:  # False for NaN too
        return None
    return round(seconds * US)


def seconds_of(us: int | None) -> float | None:
    return None if us is None else us / US


class NewTask(Record):
    title: str
    kind: str
    priority: int = 2
    prompt: str = ""
    params: dict[str, Any] = {}  # noqa: RUF012 (never mutated: NamedTuples are values)
    depends_on: tuple[int, ...] = ()
    max_attempts: int = 3
    timeout_s: float | None = None
    external_id: str | None = None


class Task(Record):
    id: int
    title: str
    kind: str
    priority: int
    status: Status
    pool: str | None
    attempts: int
    max_attempts: int
    depends_on: tuple[int, ...]
    params: dict[str, Any]
    created_us: int
    started_us: int | None
    finished_us: int | None
    result: str | None
    error: str | None
    external_id: str | None
    prompt: str = ""
    timeout_s: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    run_after_us: int | None = None
    first_token_s: float | None = None  # the last attempt that answered: to its first token
    generation_s: float | None = None  # and from its first token to its last

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second of generation; None when the host did not tell."""
        if not self.tokens_out or not self.generation_s:
            return None
        return self.tokens_out / self.generation_s

    def to_json(self) -> dict[str, Any]:
        """The contract's fields, then ygg's extensions."""
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "priority": self.priority,
            "status": self.status,
            "pool": self.pool,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "depends_on": list(self.depends_on),
            "params": self.params,
            "created_at": iso(self.created_us),
            "started_at": iso(self.started_us),
            "finished_at": iso(self.finished_us),
            "result": self.result,
            "error": self.error,
            "external_id": self.external_id,
            "timeout": self.timeout_s,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "first_token_s": self.first_token_s,
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 3),
            "retry_at": iso(self.run_after_us) if self.status == "queued" else None,
        }


class Claim(Record):
    """A task handed to one owner under a lease; `token` fences every later write."""

    task_id: int
    token: int
    kind: str
    priority: int
    title: str
    prompt: str
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    timeout_s: float | None
    created_us: int = 0  # when it was submitted: the queue-wait metric starts here


class Outcome(Record):
    """How an attempt ended, as the dispatcher reports it to the store."""

    result: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    first_token_s: float | None = None  # from the request's start to the first streamed token
    generation_s: float | None = None  # from the first token to the last: tokens_out / this = tok/s

    def storable(self) -> Outcome:
        """This outcome with its text and counts made storable (see storable_text); itself
        when it is already (the common case, which makes no copy)."""
        result = None if self.result is None else storable_text(self.result)
        tokens_in, tokens_out = storable_count(self.tokens_in), storable_count(self.tokens_out)
        if result is self.result and tokens_in == self.tokens_in and tokens_out == self.tokens_out:
            return self
        return self._replace(result=result, tokens_in=tokens_in, tokens_out=tokens_out)


class Daemon(Record):
    id: int
    hostname: str
    pid: int
    pid_started_us: int  # wall clock: moved by a clock step, so liveness prefers the ticks
    nudge: str  # the abstract Unix socket name the daemon listens on
    mode: str
    heartbeat_us: int
    config_error: str | None = None  # why its last reload was refused
    pid_start_ticks: int | None = None  # /proc/PID/stat starttime; None in rows of older ygg
    boot_id: str | None = None  # the boot those ticks count from


class Reaped(Record):
    """A task taken back from a dead owner, and the attempt that was interrupted."""

    task_id: int
    status: str  # queued, or failed once it was interrupted max_attempts times
    attempt: int


class Renewal(Record):
    """What a lease renewal found: the tasks the owner still holds, and the rows it held
    without a live attempt that were taken back."""

    held: set[int]
    orphans: list[Reaped]


class BreakerState(Record):
    """One daemon's circuit breaker for one pool, as last recorded."""

    daemon: int
    pool: str
    state: BreakerPhase
    reason: str | None
    since_us: int


class HostReport(Record):
    """What one pool's host last said about its load, as one daemon read it (JSON, the shape of
    ygg.backends.telemetry.HostTelemetry.to_json); `since_us`: when it last changed."""

    daemon: int
    pool: str
    data: dict[str, Any]
    since_us: int


class PoolLimit(Record):
    """A pool's limit as the store holds it: one for every daemon on the queue.

    `configured` is the `slots` of the configuration that set it last (an adaptive pool's
    ceiling: its limit moves below it, the configured slots stay); `files` gives, per live
    daemon, the `slots` its own configuration file gives the pool."""

    pool: str
    limit: int
    configured: int
    source: str  # config (a daemon's start or reload) | claim (a first claim) | adaptive | ...
    set_by: int | None  # the daemon that set it; None when no daemon did
    set_us: int
    files: dict[int, int] = {}  # noqa: RUF012 (never mutated: NamedTuples are values)

    def disagreeing(self) -> list[int]:
        """The daemons whose configuration file gives the pool other slots than the one that
        set its limit."""
        return sorted(d for d, slots in self.files.items() if slots != self.configured)


MAX_LIMIT = 2**31 - 1  # the largest slot limit either engine stores


def check_limit(pool: str, limit: int, configured: int | None) -> None:
    """A slot limit (and the configured slots it comes from) either engine can keep."""
    from ygg.errors import InvalidInput  # here: most commands never set a limit

    for name, value in (("limit", limit), ("configured slots", configured)):
        if value is not None and not 1 <= value <= MAX_LIMIT:
            raise InvalidInput(
                f"The {name} of pool {pool} must be a whole number from 1 to {MAX_LIMIT}."
            )


class Head(Record):
    """The head of one kind's line: the task a pool would claim next, or the oldest waiting."""

    kind: str
    task_id: int
    status: str  # queued | waiting
    priority: int
    created_us: int
    run_after_us: int | None  # queued, in a retry backoff until then
    blockers: tuple[int, ...] = ()  # waiting: the unfinished tasks it depends on


class Upsert(Record):
    """One task of an import: inserted, or updated by its `external_id`."""

    task: NewTask  # its external_id is required; its depends_on is ignored
    after: tuple[str, ...] = ()  # external ids: earlier in the batch, or already stored


class UpsertResult(Record):
    imported: list[str]
    updated: list[str]
    unchanged: list[str]
    # changed in the source, but the task has started: (external id, task id, its status)
    kept: list[tuple[str, int, str]]
    status: dict[str, str]  # external id -> status afterwards


UPDATABLE = ("waiting", "queued")  # an imported task is updated only until it has started


class Imported(Record):
    """A task an import finds already stored under its external id."""

    id: int
    status: str
    title: str
    kind: str
    priority: int
    prompt: str
    depends_on: frozenset[int]


def upsert_change(
    stored: Imported, task: NewTask, depends_on: tuple[int, ...], result: UpsertResult
) -> bool | None:
    """What an import does with a task it already holds (the same rule on every engine):
    None when nothing is to be written — unchanged, or changed but started, so ygg's record
    wins (both noted in `result`); else the task is updated, and True if its dependencies
    change too."""
    external_id = task.external_id or ""
    same_fields = (task.title, task.kind, task.priority, task.prompt) == (
        stored.title,
        stored.kind,
        stored.priority,
        stored.prompt,
    )
    same_deps = frozenset(depends_on) == stored.depends_on
    if same_fields and same_deps:
        result.unchanged.append(external_id)
        return None
    if stored.status not in UPDATABLE:
        result.unchanged.append(external_id)
        result.kept.append((external_id, stored.id, stored.status))
        return None
    return not same_deps


def task_from_row(row: Sequence[Any], depends_on: Iterable[int]) -> Task:
    """A Task from a row of the engines' task columns, in the order both select them: id,
    title, kind, priority, status, pool, attempts, max_attempts, params (JSON), created_us,
    started_us, finished_us, result, error, external_id, prompt, timeout_s, tokens_in,
    tokens_out, run_after_us, (the dependencies, passed apart), first_token_us,
    generation_us."""
    return Task(
        id=row[0],
        title=row[1],
        kind=row[2],
        priority=row[3],
        status=Status(row[4]),
        pool=row[5],
        attempts=row[6],
        max_attempts=row[7],
        depends_on=tuple(depends_on),
        params=decode_json(row[8]),
        created_us=row[9],
        started_us=row[10],
        finished_us=row[11],
        result=row[12],
        error=row[13],
        external_id=row[14],
        prompt=row[15],
        timeout_s=row[16],
        tokens_in=row[17],
        tokens_out=row[18],
        run_after_us=row[19],
        first_token_s=seconds_of(row[21]),
        generation_s=seconds_of(row[22]),
    )
