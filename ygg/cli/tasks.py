"""Task commands: submit, list, show, cancel, retry."""

from __future__ import annotations

import sys
from argparse import Namespace

from ygg.cli.args import Parser, seconds, whole
from ygg.cli.context import Env, echo, emit_json
from ygg.errors import InvalidInput
from ygg.paths import pure

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    import argparse
    from typing import Any

DEFAULT_LIMIT = 100
COMMANDS = ("submit", "list", "show", "cancel", "retry")


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    for name in COMMANDS:
        register_one(commands, name)


def register_one(commands: argparse._SubParsersAction[Parser], name: str) -> None:
    """Adds command `name` alone: `ygg submit` builds its own parser, not all five."""
    if name in ("cancel", "retry"):
        _add_by_id(commands, name)
    else:
        {"submit": _add_submit, "list": _add_list, "show": _add_show}[name](commands)


def _add_submit(commands: argparse._SubParsersAction[Parser]) -> None:
    submit = commands.add_parser(
        "submit", help="enqueue one task (or many, --jsonl); prints the new ids"
    )
    submit.add_argument("title", metavar="TITLE", nargs="?", help="The task's title.")
    submit.add_argument(
        "--jsonl", metavar="FILE", help="many tasks, one JSON object a line (- for stdin)"
    )
    submit.add_argument("--kind", default="general", help="task kind; a pool must serve it")
    submit.add_argument(
        "-p", "--priority", type=whole, default=2, help="0 most urgent ... 4 least (default 2)"
    )
    prompt = submit.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", metavar="TEXT", help="prompt text, or - to read stdin")
    prompt.add_argument("--prompt-file", metavar="FILE", help="read the prompt")
    submit.add_argument(
        "--after", metavar="ID", type=whole, action="append", default=[],
        help="run after task ID is done (repeatable)",
    )  # fmt: skip
    submit.add_argument(
        "--param", metavar="KEY=VALUE", action="append", default=[], help="repeatable"
    )
    submit.add_argument("--max-attempts", metavar="N", type=whole, help="attempts allowed")
    submit.add_argument("--timeout", metavar="S", type=seconds, help="seconds one attempt may run")
    _json(submit)
    submit.set_defaults(run=_submit)


def _add_list(commands: argparse._SubParsersAction[Parser]) -> None:
    listing = commands.add_parser("list", help="tasks, most urgent first")
    listing.add_argument("--status", metavar="S", help="only this status")
    listing.add_argument("--kind", metavar="K", help="only this kind")
    listing.add_argument(
        "--limit", metavar="N", type=whole, default=DEFAULT_LIMIT, help="at most N (100)"
    )
    _json(listing)
    listing.set_defaults(run=_list)


def _add_show(commands: argparse._SubParsersAction[Parser]) -> None:
    show = commands.add_parser("show", help="one task, with its result or error")
    show.add_argument("task_id", metavar="ID", type=whole, help="The task's id.")
    _json(show)
    show.set_defaults(run=_show)


def _add_by_id(commands: argparse._SubParsersAction[Parser], name: str) -> None:
    what = {
        "cancel": "cancel a task; a running attempt is stopped",
        "retry": "put a failed, blocked or cancelled task back in line",
    }
    command = commands.add_parser(name, help=what[name])
    command.add_argument("task_id", metavar="ID", type=whole, help="The task's id.")
    command.set_defaults(run=_cancel if name == "cancel" else _retry)


def _json(parser: Parser) -> None:
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="print one JSON document"
    )


def _read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    try:  # bytes, so nothing translates newlines or guesses an encoding from the locale
        if prompt == "-":
            data = sys.stdin.buffer.read()
        elif prompt_file is not None:
            with open(pure(prompt_file), "rb") as f:  # pure: messages name it as they did
                data = f.read()
        else:
            return prompt or ""
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The prompt cannot be read: {exc}.") from None


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--param takes KEY=VALUE, not {pair!r}.")
        params[key] = value
    return params


def _submit(env: Env, args: Namespace) -> None:
    from ygg import api

    if args.jsonl is not None:
        _submit_jsonl(env, args)
        return
    if args.title is None:
        raise InvalidInput("`ygg submit` needs TITLE (the task's title), or --jsonl FILE.")
    task = api.new_task(
        env.config(),
        title=args.title,
        kind=args.kind,
        priority=args.priority,
        prompt=_read_prompt(args.prompt, args.prompt_file),
        depends_on=args.after,
        params=_parse_params(args.param),
        max_attempts=args.max_attempts,
        timeout_s=args.timeout,
    )
    created = api.submit(env.store(), task)
    if args.as_json:
        emit_json(created.to_json())
    else:
        echo(created.id)


# What a --jsonl line sets for itself: giving one of these as an option too is ambiguous.
_PER_TASK = ("title", "prompt", "prompt_file", "max_attempts", "timeout")


def _submit_jsonl(env: Env, args: Namespace) -> None:
    from ygg import api

    given = [name for name in _PER_TASK if getattr(args, name) is not None]
    given += [name for name in ("after", "param") if getattr(args, name)]
    if given or args.kind != api.DEFAULT_KIND or args.priority != 2:
        raise InvalidInput("--jsonl takes every field from its lines; give no TITLE or options.")
    try:
        if args.jsonl == "-":
            lines = sys.stdin.buffer.read().splitlines()
        else:
            with open(args.jsonl, "rb") as f:
                lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidInput(f"{args.jsonl} cannot be read: {exc.strerror}.") from None
    store = env.store()
    ids = api.submit_jsonl(store, env.config(), lines)
    if args.as_json:
        emit_json([store.get(task_id).to_json() for task_id in ids])
    else:
        sys.stdout.write("".join(f"{task_id}\n" for task_id in ids))


def _list(env: Env, args: Namespace) -> None:
    from ygg import api
    from ygg.cli.format import task_lines
    from ygg.store.model import MAX_COUNT, STATUSES

    if args.status is not None and args.status not in STATUSES:
        raise InvalidInput(
            f"Unknown status {args.status!r}; the statuses are: {', '.join(STATUSES)}."
        )
    if not 1 <= args.limit <= MAX_COUNT:
        raise InvalidInput(f"--limit must be from 1 to {MAX_COUNT}, not {args.limit}.")
    if args.kind is not None:
        api.check_utf8(args.kind, "The kind")
    tasks = env.store().list_tasks(status=args.status, kind=args.kind, limit=args.limit)
    if args.as_json:
        emit_json([task.to_json() for task in tasks])
        return
    for line in task_lines(tasks):
        echo(line)


def _show(env: Env, args: Namespace) -> None:
    from ygg import api
    from ygg.cli.format import task_text

    task = api.get(env.store(), args.task_id)
    if args.as_json:
        document: dict[str, Any] = {**task.to_json(), "prompt": task.prompt}
        emit_json(document)
    else:
        echo(task_text(task))


def _cancel(env: Env, args: Namespace) -> None:
    from ygg import api

    task, previous = api.cancel(env.store(), args.task_id)
    echo(f"task {task.id}: {previous} → {task.status}")


def _retry(env: Env, args: Namespace) -> None:
    from ygg import api

    task = api.retry(env.store(), args.task_id)
    echo(f"task {task.id}: {task.status}")
