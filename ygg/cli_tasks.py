"""Task commands: submit, list, show, cancel, retry, status."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ygg import api
from ygg.cli import app, emit_json, env
from ygg.cli_format import task_line, task_text
from ygg.dispatch import nudge
from ygg.errors import InvalidInput
from ygg.store import STATUSES
from ygg.store.model import now_us

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise InvalidInput("Give the prompt once: --prompt or --prompt-file, not both.")
    try:  # bytes, so nothing translates newlines or guesses an encoding from the locale
        if prompt == "-":
            data = sys.stdin.buffer.read()
        elif prompt_file is not None:
            data = prompt_file.read_bytes()
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


@app.command()
def submit(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="What the task is.")],
    kind: Annotated[
        str, typer.Option("--kind", help="Task kind; a pool must serve it.")
    ] = "general",
    priority: Annotated[int, typer.Option("-p", "--priority", help="0 most urgent … 4 least.")] = 2,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Prompt text, or - for stdin.")
    ] = None,
    prompt_file: Annotated[
        Path | None, typer.Option("--prompt-file", help="Read the prompt from a file.")
    ] = None,
    after: Annotated[
        list[int] | None, typer.Option("--after", help="Run after task ID finishes.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="KEY=VALUE, repeatable.")
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="Attempts allowed.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds one attempt may run.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue one task; prints its id."""
    e = env(ctx)
    task = api.new_task(
        e.config(),
        title=title,
        kind=kind,
        priority=priority,
        prompt=_read_prompt(prompt, prompt_file),
        depends_on=after or [],
        params=_parse_params(param or []),
        max_attempts=max_attempts,
        timeout_s=timeout,
    )
    created = api.submit(e.store(), task)
    if as_json:
        emit_json(created.to_json())
    else:
        typer.echo(created.id)


@app.command("list")
def list_tasks(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Tasks, most urgent first."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"Unknown status {status!r}; the statuses are: {', '.join(STATUSES)}.")
    if limit < 1:
        raise InvalidInput(f"--limit must be at least 1, not {limit}.")
    if kind is not None:
        api.check_utf8(kind, "The kind")
    tasks = env(ctx).store().list_tasks(status=status, kind=kind, limit=limit)
    if as_json:
        emit_json([task.to_json() for task in tasks])
        return
    for task in tasks:
        typer.echo(task_line(task))


@app.command()
def show(
    ctx: typer.Context,
    task_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonFlag = False,
) -> None:
    """One task, with its result or error."""
    task = env(ctx).store().get(task_id)
    if as_json:
        emit_json({**task.to_json(), "prompt": task.prompt})
    else:
        typer.echo(task_text(task))


@app.command()
def cancel(ctx: typer.Context, task_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Cancel a task; a running attempt is stopped."""
    store = env(ctx).store()
    previous, owner = store.cancel(task_id, now_us())
    if owner is not None:
        addresses = [d.nudge for d in store.daemons() if d.id == owner]
        nudge.send(addresses, nudge.CANCEL + f" {task_id}".encode())
    typer.echo(f"task {task_id}: {previous} → cancelled")


@app.command()
def retry(ctx: typer.Context, task_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Put a failed, blocked or cancelled task back in line."""
    store = env(ctx).store()
    status = store.retry(task_id, now_us())
    api.wake_daemons(store)
    typer.echo(f"task {task_id}: {status}")


@app.command()
def status(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    probe: Annotated[
        bool, typer.Option("--probe/--no-probe", help="Ask each host's health endpoint.")
    ] = True,
) -> None:
    """Per pool: slots, running, queued, breaker, host health; tasks by status; why the next
    task of each kind waits; the daemons on the queue."""
    from ygg.status import status_lines, status_report

    report = status_report(env(ctx).config(), env(ctx).store(), probe=probe)
    if as_json:
        emit_json(report)
        return
    for line in status_lines(report):
        typer.echo(line)
