"""`ygg import ...`: bring tasks in from other trackers (for now: Beads)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ygg.cli.args import Parser
from ygg.cli.context import Env, echo, emit_json

if TYPE_CHECKING:
    import argparse

    from ygg.beads.importer import ImportReport, Progress

LARGE_FILE_BYTES = 1024 * 1024  # below this an import is over before a bar would be read
MAX_WARNING_LINES = 50  # the rest are counted; --json lists them all


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    imports = commands.add_parser("import", help="import tasks from other trackers")
    sources = imports.add_subparsers(
        title="sources", metavar="SOURCE", required=True, parser_class=Parser
    )
    beads = sources.add_parser(
        "beads",
        help="a Beads issues.jsonl: open issues become tasks, blocking edges dependencies",
        description="Idempotent by the Beads id: running it again adds nothing, and updates "
        "tasks whose issue changed while they are still waiting or queued.",
    )
    beads.add_argument("file", metavar="FILE", type=Path, help="A Beads issues.jsonl export.")
    beads.add_argument(
        "--kind", default="general", help="kind for issues with no label a pool serves"
    )
    beads.add_argument(
        "--json", dest="as_json", action="store_true", help="print one JSON document"
    )
    beads.set_defaults(run=_beads)


def _beads(env: Env, args: argparse.Namespace) -> None:
    from ygg.beads.importer import import_beads

    file: Path = args.file
    config, store = env.config(), env.store()
    with _progress(file) as progress:
        report = import_beads(config, store, file, default_kind=args.kind, progress=progress)
    _warn(report)
    if args.as_json:
        emit_json(report.to_json())
        return
    echo(
        f"{file.name}: imported {report.imported} (queued {report.queued}, waiting "
        f"{report.waiting}), updated {report.updated}, unchanged {report.unchanged}, "
        f"skipped {report.skipped}"
    )
    if report.skipped_by_reason:
        reasons = ", ".join(f"{k} {n}" for k, n in report.skipped_by_reason.items())
        echo(f"skipped: {reasons}")


def _warn(report: ImportReport) -> None:
    for cycle in report.cycles:
        echo(f"ygg: warning: dependency cycle: {' -> '.join(cycle)}", err=True)
    for problem in report.warnings[:MAX_WARNING_LINES]:
        echo(f"ygg: warning: {problem.text()}", err=True)
    more = len(report.warnings) - MAX_WARNING_LINES
    if more > 0:
        echo(f"ygg: warning: {more} more warnings (--json lists them all)", err=True)


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
