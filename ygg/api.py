"""The library API the CLI is a thin layer over: validated submits, and nudging daemons."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from ygg.config import Config
from ygg.errors import BatchItemError, InvalidInput, TaskNotFound
from ygg.store import NewTask, Task
from ygg.store.model import MAX_COUNT, MAX_PRIORITY, encode_json, now_us

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from typing import Any

    from ygg.store.base import Store


MAX_PROMPT_BYTES = 1024 * 1024
MAX_TITLE_CHARS = 500
MAX_PARAMS = 64
MAX_PARAM_CHARS = 64 * 1024
MAX_ATTEMPTS = 1000
PARAM_KEY = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"  # compiled on first use: most tasks have none
DEFAULT_KIND = "general"
Stored = Callable[["Store", int], None]  # told of a task once written, before daemons are woken
# Would break a line of `ygg list`. A set, not a regex: compiling one costs each submit more
# than a search saves.
CONTROL = frozenset([*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u2028", "\u2029"])


def check_task_id(task_id: int) -> int:
    """A task id as the store can hold it; anything else names no task."""
    if not 1 <= task_id <= MAX_COUNT:
        raise TaskNotFound(f"No task {task_id}.")
    return task_id


def check_kind(config: Config, kind: str) -> None:
    if not config.pools_for_kind(kind):
        served = config.kinds_served()
        listing = ", ".join(served) if served else "none (no pools are configured)"
        raise InvalidInput(f"No pool serves kind {kind!r}; the kinds served are: {listing}.")


def check_params(config: Config, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params as stored: names checked, text bounded, and generation options typed as the
    pools serving `kind` take them (`temperature=0.2` a number); an option one of those pools
    does not know is refused, naming the ones it does."""
    if len(params) > MAX_PARAMS:
        raise InvalidInput(f"At most {MAX_PARAMS} params are allowed, not {len(params)}.")
    checked = {}
    for key, value in params.items():
        if not re.match(PARAM_KEY, key):
            raise InvalidInput(f"Param name {key!r} must be letters, digits and '_' (max 64).")
        text = value if isinstance(value, str) else encode_json(value)
        if len(text) > MAX_PARAM_CHARS:
            raise InvalidInput(f"Param {key} is longer than {MAX_PARAM_CHARS} characters.")
        check_utf8(text, f"Param {key}")
        checked[key] = _typed(config, kind, key, value)
    return checked


def _typed(config: Config, kind: str, key: str, value: Any) -> Any:
    """A generation option parsed for every HTTP pool serving `kind`; other params as text."""
    from ygg.config.generation import KNOWN, REQUEST_PARAMS, parse

    backends = {pool.backend for pool in config.pools_for_kind(kind)} & set(KNOWN)
    if not backends or key in REQUEST_PARAMS:
        return value if isinstance(value, str) else encode_json(value)
    typed = value
    for backend in sorted(backends):
        try:
            typed = parse(backend, key, value)
        except InvalidInput as exc:
            raise InvalidInput(f"Param {key} {exc.message} (kind {kind!r}).") from None
    return typed


def check_utf8(text: str, what: str) -> bytes:
    """Text from argv may hold surrogates (undecodable bytes); the store takes only UTF-8."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid UTF-8 text.") from None


def check_title(title: str) -> str:
    """The title as stored (stripped): one line of text, not empty, not too long."""
    check_utf8(title, "The title")
    title = title.strip()
    if not title:
        raise InvalidInput("The title must not be empty.")
    control = next((char for char in title if char in CONTROL), None)
    if control is not None:
        raise InvalidInput(
            f"The title must be one line of text; it holds the control character "
            f"{control!r} (put longer text in the prompt)."
        )
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(f"The title is longer than {MAX_TITLE_CHARS} characters.")
    return title


def new_task(
    config: Config,
    *,
    title: str,
    kind: str,
    priority: int = 2,
    prompt: str = "",
    depends_on: Sequence[int] = (),
    params: Mapping[str, Any] | None = None,
    max_attempts: int | None = None,
    timeout_s: float | None = None,
    external_id: str | None = None,
) -> NewTask:
    """Validates one submission against the configuration."""
    title = check_title(title)
    check_kind(config, kind)
    if not 0 <= priority <= MAX_PRIORITY:
        raise InvalidInput(f"Priority must be 0 (most urgent) to {MAX_PRIORITY}, not {priority}.")
    if len(check_utf8(prompt, "The prompt")) > MAX_PROMPT_BYTES:
        raise InvalidInput(f"The prompt is larger than {MAX_PROMPT_BYTES} bytes.")
    params = check_params(config, kind, params or {})
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise InvalidInput(f"--max-attempts must be from 1 to {MAX_ATTEMPTS}, not {max_attempts}.")
    for parent in depends_on:
        if not 1 <= parent <= MAX_COUNT:
            raise TaskNotFound(f"Cannot depend on task {parent}: no such task.")
    if timeout_s is not None and not 0 < timeout_s < float("inf"):
        raise InvalidInput(f"--timeout must be a positive number of seconds, not {timeout_s}.")
    pool = config.pools_for_kind(kind)[0]
    return NewTask(
        title=title,
        kind=kind,
        priority=priority,
        prompt=prompt,
        params=params,
        depends_on=tuple(depends_on),
        max_attempts=max_attempts or pool.retry.max_attempts,
        timeout_s=timeout_s,
        external_id=external_id,
    )


# The fields of a task given as JSON (POST /api/tasks, a line of `ygg submit --jsonl`), with the
# JSON types each takes; only `title` is required.
TASK_FIELDS: dict[str, tuple[type, ...]] = {
    "title": (str,),
    "kind": (str,),
    "priority": (int,),
    "prompt": (str,),
    "after": (list,),
    "params": (dict,),
    "max_attempts": (int,),
    "timeout": (int, float),
}


def task_from_json(config: Config, data: Any) -> NewTask:
    """A submission given as a JSON object, validated as `ygg submit` validates its options."""
    if not isinstance(data, dict):
        raise InvalidInput(f"A task must be a JSON object, not {type(data).__name__}.")
    for key, value in data.items():
        if key not in TASK_FIELDS:
            raise InvalidInput(f"Unknown field {key!r}; the fields are: {', '.join(TASK_FIELDS)}.")
        kinds = TASK_FIELDS[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            what = " or ".join(k.__name__ for k in kinds)
            raise InvalidInput(f"Field {key!r} must be {_JSON_NAMES.get(what, what)}.")
    if not isinstance(data.get("title"), str):
        raise InvalidInput("Field 'title' is required.")
    after = data.get("after") or []
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in after):
        raise InvalidInput("Field 'after' must be a list of task ids.")
    params = data.get("params") or {}
    if not all(isinstance(v, str | int | float | list | dict) for v in params.values()):
        raise InvalidInput("Field 'params' must map names to strings, numbers, lists or objects.")
    return new_task(
        config,
        title=data["title"],
        kind=data.get("kind") or DEFAULT_KIND,
        priority=2 if data.get("priority") is None else data["priority"],
        prompt=data.get("prompt") or "",
        depends_on=after,
        params=params,
        max_attempts=data.get("max_attempts"),
        timeout_s=data.get("timeout"),
    )


_JSON_NAMES = {"str": "a string", "int": "a whole number", "int or float": "a number",
               "list": "a list", "dict": "an object"}  # fmt: skip


def tasks_from_jsonl(config: Config, lines: Iterable[bytes]) -> list[tuple[int, NewTask]]:
    """One task per non-empty line, with its line number; an error names its line."""
    import json

    tasks: list[tuple[int, NewTask]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            tasks.append((number, task_from_json(config, json.loads(line))))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"Line {number} is not valid JSON: {exc}.") from None
        except InvalidInput as exc:
            raise InvalidInput(f"Line {number}: {exc.message}") from None
    return tasks


def submit_jsonl(store: Store, config: Config, lines: Iterable[bytes]) -> list[int]:
    """`ygg submit --jsonl`: every line stored in one transaction, or none."""
    numbered = tasks_from_jsonl(config, lines)
    try:
        return submit_many(store, [task for _, task in numbered])
    except BatchItemError as exc:
        raise InvalidInput(f"Line {numbered[exc.index][0]}: {exc.message}") from None


def submit_many(store: Store, tasks: Sequence[NewTask]) -> list[int]:
    """Enqueues every task in one transaction, or none; wakes the daemons once."""
    ids = store.enqueue_many(tasks, now_us())
    if ids:
        wake_daemons(store)
    return ids


def submit(store: Store, task: NewTask, *, stored: Stored | None = None) -> Task:
    """Enqueues a validated task and nudges every daemon on the queue to look at once
    (`stored`, if given, hears of the task first: the HTTP API's event stream)."""
    task_id = store.enqueue(task, now_us())
    if stored is not None:
        stored(store, task_id)
    wake_daemons(store)
    return store.get(task_id)


def wake_daemons(store: Store, message: bytes | None = None) -> int:
    """Nudges every daemon on the queue (a wake-up unless `message` says otherwise)."""
    addresses = [daemon.nudge for daemon in store.daemons()]
    if not addresses:
        return 0
    from ygg import nudge  # here: with no daemon running, a submit needs no socket

    return nudge.send(addresses, message or nudge.WAKE)


def get(store: Store, task_id: int) -> Task:
    return store.get(check_task_id(task_id))


def cancel(store: Store, task_id: int) -> tuple[Task, str]:
    """Cancels a task; a running attempt is told to stop. Returns the task and its status
    before."""
    previous, owner = store.cancel(check_task_id(task_id), now_us())
    if owner is not None:
        from ygg import nudge

        addresses = [d.nudge for d in store.daemons() if d.id == owner]
        nudge.send(addresses, nudge.cancel_message(task_id))
    return store.get(task_id), previous


def retry(store: Store, task_id: int, *, stored: Stored | None = None) -> Task:
    """Puts a failed, blocked or cancelled task back in line and wakes the daemons."""
    store.retry(check_task_id(task_id), now_us())
    if stored is not None:
        stored(store, task_id)
    wake_daemons(store)
    return store.get(task_id)
