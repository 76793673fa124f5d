"""`ygg bench` and `ygg demo`: legacy against async on simulated hosts, no configuration needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ygg.bench import DEFAULT_SCALE, MODES, check_scale, document, modes_of, run_suite, scenarios
from ygg.bench.figures import ScenarioResult
from ygg.bench.report import scenario_report
from ygg.bench.scenarios import DEFAULT_THROUGHPUT_TASKS, NAMES
from ygg.bench.svg import svg_timelines
from ygg.cli import app, emit_json
from ygg.errors import InvalidInput, YggError

DEMO_SCENARIOS = ("six", "twenty-twenty")
DEMO_SVG = "ygg-demo.svg"
POOLS_LINE = "surtr-reasoning (2 slots), fenrir-chat (3 slots) and skadi-code (2 slots)"


class CannotWrite(YggError):
    """A file could not be written."""


def _check_writable(path: Path) -> None:
    """Refuses an SVG path that cannot be written before any time is spent running."""
    parent = path.parent
    if path.is_dir():
        raise InvalidInput(f"--svg {path} is a directory; give a file name.")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InvalidInput(f"Cannot write {path}: {parent} is not a writable directory.")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CannotWrite(f"Cannot write {path}: {exc.strerror or exc}.") from None


def _progress(message: str) -> None:
    typer.echo(f"  {message}", err=True)


def _scale_note(scale: float) -> str:
    return f"1 simulated second = {scale * 1000:g} ms of real time"


def _subtitle(scale: float) -> list[str]:
    return [
        f"Simulated hosts {POOLS_LINE}; a lane per slot; {_scale_note(scale)}.",
        "Makespan: first start to last finish. Lower bound: the least any dispatcher could do "
        "with the slots the mode uses.",
    ]


@app.command()
def bench(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="SCENARIO", help=f"{', '.join(NAMES)} (default: all of them)."),
    ] = None,
    scale: Annotated[
        float, typer.Option("--scale", help="Real seconds per simulated second.")
    ] = DEFAULT_SCALE,
    mode: Annotated[str, typer.Option("--mode", help="async, legacy or both.")] = "both",
    svg: Annotated[
        Path | None, typer.Option("--svg", help="Write the timelines to this SVG file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    tasks: Annotated[
        int, typer.Option("--tasks", help="How many tasks the throughput scenario runs.")
    ] = DEFAULT_THROUGHPUT_TASKS,
) -> None:
    """Time simulated scenarios under the legacy and the async dispatcher."""
    check_scale(scale)
    modes = modes_of(mode)
    chosen = scenarios(names or [], tasks=tasks)
    if svg is not None:
        _check_writable(svg)
    results = run_suite(chosen, modes, scale, _progress)
    if svg is not None:
        _write(
            svg, svg_timelines(results, "ygg bench: legacy and async dispatchers", _subtitle(scale))
        )
    if as_json:
        emit_json(document(results, scale))
    else:
        typer.echo("\n\n".join(scenario_report(r) for r in results))
    if svg is not None:
        typer.echo(f"timelines drawn in {svg}", err=as_json)


def _default_demo_svg() -> Path:
    here = Path.cwd()
    if os.access(here, os.W_OK):
        return Path(DEMO_SVG)
    return Path(tempfile.gettempdir()) / DEMO_SVG


def _demo_summary(results: list[ScenarioResult]) -> list[str]:
    lines = ["Summary (simulated seconds):"]
    for result in results:
        legacy, fast = result.run("legacy"), result.run("async")
        if legacy is None or fast is None:
            continue
        lines.append(
            f"  {result.scenario.name:<14} legacy {legacy.makespan_s:6.1f} s   "
            f"async {fast.makespan_s:6.1f} s   {result.speedup or 0:.2f}x faster"
        )
    return lines


@app.command()
def demo(
    svg: Annotated[
        Path | None,
        typer.Option("--svg", help=f"Where to draw the timelines (default: ./{DEMO_SVG})."),
    ] = None,
) -> None:
    """Show legacy against async on the seed's scenarios; needs no configuration."""
    target = svg if svg is not None else _default_demo_svg()
    _check_writable(target)
    typer.echo(
        "ygg demo: the same queue drained by the legacy dispatcher (a thread per pool, one task\n"
        "at a time) and by the async dispatcher (every slot of every pool), on simulated hosts\n"
        f"{POOLS_LINE}.\n"
        "Each run has its own configuration and SQLite queue in a temporary directory;\n"
        f"{_scale_note(DEFAULT_SCALE)}.\n"
    )
    results = run_suite(scenarios(list(DEMO_SCENARIOS)), MODES, DEFAULT_SCALE, _progress)
    for result in results:
        typer.echo(scenario_report(result) + "\n")
    typer.echo("\n".join(_demo_summary(results)))
    _write(
        target,
        svg_timelines(results, "ygg demo: legacy and async dispatchers", _subtitle(DEFAULT_SCALE)),
    )
    typer.echo(f"\nTimelines drawn in {target}")
