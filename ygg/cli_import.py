"""`ygg import ...`: bring tasks in from other trackers (for now: Beads)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ygg.beads.importer import ImportReport, Progress

import_app = typer.Typer(no_args_is_help=True, help="Import tasks from other trackers.")

LARGE_FILE_BYTES = 1024 * 1024  # below this an import is over before a bar would be read
MAX_WARNING_LINES = 50  # the rest are counted; --json lists them all


@import_app.command("beads")
def beads(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A Beads issues.jsonl export.")],
    kind: Annotated[
        str, typer.Option("--kind", help="Kind for issues with no label a pool serves.")
    ] = "general",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Import a Beads issues.jsonl: open issues become tasks, blocking edges dependencies.

    Idempotent by the Beads id: running it again adds nothing, and updates tasks whose issue
    changed while they are still waiting or queued.
    """
    from ygg.beads.importer import import_beads
    from ygg.cli import emit_json, env

    e = env(ctx)
    config, store = e.config(), e.store()
    with _progress(file) as progress:
        report = import_beads(config, store, file, default_kind=kind, progress=progress)
    _warn(report)
    if as_json:
        emit_json(report.to_json())
        return
    typer.echo(
        f"{file.name}: imported {report.imported} (queued {report.queued}, waiting "
        f"{report.waiting}), updated {report.updated}, unchanged {report.unchanged}, "
        f"skipped {report.skipped}"
    )
    if report.skipped_by_reason:
        reasons = ", ".join(f"{k} {n}" for k, n in report.skipped_by_reason.items())
        typer.echo(f"skipped: {reasons}")


def _warn(report: ImportReport) -> None:
    for cycle in report.cycles:
        typer.echo(f"ygg: warning: dependency cycle: {' -> '.join(cycle)}", err=True)
    for problem in report.warnings[:MAX_WARNING_LINES]:
        typer.echo(f"ygg: warning: {problem.text()}", err=True)
    more = len(report.warnings) - MAX_WARNING_LINES
    if more > 0:
        typer.echo(f"ygg: warning: {more} more warnings (--json lists them all)", err=True)


@contextmanager
def _progress(file: Path) -> Iterator[Progress | None]:
    """A progress bar on stderr, only for a large file and only when stderr is a terminal."""
    try:
        large = file.stat().st_size >= LARGE_FILE_BYTES
    except OSError:
        large = False  # the import itself reports the file it cannot read
    if not (large and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress as Bar
    from rich.progress import TaskID

    with Bar(console=Console(stderr=True), transient=True) as bar:
        phases: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in phases:
                label = "reading" if phase == "read" else "writing tasks"
                phases[phase] = bar.add_task(label, total=total)
            bar.update(phases[phase], completed=done)

        yield update
