"""`ygg bench` and `ygg demo`: legacy against async on simulated hosts, no configuration needed."""

from __future__ import annotations

import os
import tempfile
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from ygg.cli import bench_adaptive
from ygg.cli.args import Parser, seconds, whole
from ygg.cli.context import Env, echo, emit_json
from ygg.errors import InvalidInput, YggError

if TYPE_CHECKING:
    import argparse

    from ygg.bench.figures import ScenarioResult

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
    echo(f"  {message}", err=True)


def _scale_note(scale: float) -> str:
    return f"1 simulated second = {scale * 1000:g} ms of real time"


def _subtitle(scale: float) -> list[str]:
    return [
        f"Simulated hosts {POOLS_LINE}; a lane per slot; {_scale_note(scale)}.",
        "Makespan: first start to last finish. Lower bound: the least any dispatcher could do "
        "with the slots the mode uses.",
    ]


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="time simulated scenarios under the legacy and the async dispatcher; "
        "`ygg bench adaptive`: adaptive slots against fixed ones",
    )
    bench.add_argument(
        "names", metavar="SCENARIO", nargs="*",
        help="scenarios to run (default: all; a wrong name lists them), or adaptive alone",
    )  # fmt: skip
    bench.add_argument(
        "--scale", metavar="S", type=seconds, default=None,
        help="real seconds per simulated second",
    )  # fmt: skip
    bench.add_argument("--mode", default="both", help="async, legacy or both")
    bench.add_argument("--svg", metavar="FILE", type=Path, help="write the timelines here")
    bench.add_argument(
        "--json", dest="as_json", action="store_true", help="print one JSON document"
    )
    bench.add_argument(
        "--tasks", metavar="N", type=whole, default=None,
        help="how many tasks the throughput scenario runs",
    )  # fmt: skip
    bench_adaptive.add_arguments(bench)
    bench.set_defaults(run=_bench)

    demo = commands.add_parser(
        "demo", help="legacy against async on the seed's scenarios; needs no configuration"
    )
    demo.add_argument(
        "--svg", metavar="FILE", type=Path, help=f"where to draw the timelines (./{DEMO_SVG})"
    )
    demo.set_defaults(run=_demo)


def _bench(env: Env, args: Namespace) -> None:
    from ygg.bench import DEFAULT_SCALE, check_scale, document, modes_of, run_suite, scenarios
    from ygg.bench.report import scenario_report
    from ygg.bench.scenarios import DEFAULT_THROUGHPUT_TASKS
    from ygg.bench.svg import svg_timelines

    svg: Path | None = args.svg
    if svg is not None:
        _check_writable(svg)
    if bench_adaptive.wants_adaptive(args):
        bench_adaptive.run(env, args, svg)
        return
    scale = DEFAULT_SCALE if args.scale is None else args.scale
    check_scale(scale)
    modes = modes_of(args.mode)
    tasks = DEFAULT_THROUGHPUT_TASKS if args.tasks is None else args.tasks
    chosen = scenarios(args.names, tasks=tasks)
    results = run_suite(chosen, modes, scale, _progress)
    if svg is not None:
        title = "ygg bench: legacy and async dispatchers"
        _write(svg, svg_timelines(results, title, _subtitle(scale)))
    if args.as_json:
        emit_json(document(results, scale))
    else:
        echo("\n\n".join(scenario_report(r) for r in results))
    if svg is not None:
        echo(f"timelines drawn in {svg}", err=args.as_json)


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


def _demo(env: Env, args: Namespace) -> None:
    """Show legacy against async on the seed's scenarios; needs no configuration."""
    from ygg.bench import DEFAULT_SCALE, MODES, run_suite, scenarios
    from ygg.bench.report import scenario_report
    from ygg.bench.svg import svg_timelines

    target: Path = args.svg if args.svg is not None else _default_demo_svg()
    _check_writable(target)
    echo(
        "ygg demo: the same queue drained by the legacy dispatcher (a thread per pool, one task\n"
        "at a time) and by the async dispatcher (every slot of every pool), on simulated hosts\n"
        f"{POOLS_LINE}.\n"
        "Each run has its own configuration and SQLite queue in a temporary directory;\n"
        f"{_scale_note(DEFAULT_SCALE)}.\n"
    )
    results = run_suite(scenarios(list(DEMO_SCENARIOS)), MODES, DEFAULT_SCALE, _progress)
    for result in results:
        echo(scenario_report(result) + "\n")
    echo("\n".join(_demo_summary(results)))
    title = "ygg demo: legacy and async dispatchers"
    _write(target, svg_timelines(results, title, _subtitle(DEFAULT_SCALE)))
    echo(f"\nTimelines drawn in {target}")
