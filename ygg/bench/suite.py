"""Runs a list of scenarios in the chosen modes, legacy first, and collects the results."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ygg.bench.figures import ScenarioResult, run_figures
from ygg.bench.runner import MODES, run_scenario
from ygg.bench.scenarios import Scenario
from ygg.errors import InvalidInput

DEFAULT_SCALE = 0.01  # 1 simulated second = 10 ms


def check_scale(scale: float) -> float:
    if not (scale > 0 and math.isfinite(scale)):
        raise InvalidInput(
            f"--scale must be a positive number of real seconds per simulated second, not {scale}."
        )
    return scale


def modes_of(mode: str) -> tuple[str, ...]:
    """`both` is legacy then async; otherwise the one mode named."""
    if mode == "both":
        return MODES
    if mode in MODES:
        return (mode,)
    raise InvalidInput(f"Unknown mode {mode!r}; the modes are: async, legacy, both.")


def run_suite(
    scenarios: Sequence[Scenario],
    modes: Sequence[str],
    scale: float,
    progress: Callable[[str], None] | None = None,
) -> list[ScenarioResult]:
    results = []
    for scenario in scenarios:
        runs = []
        for mode in modes:
            if progress:
                progress(f"{scenario.name}: {mode} ...")
            run = run_scenario(scenario, mode, scale)
            if progress:
                f = run_figures(run)
                what = (
                    f"{f.tasks_per_s:,.0f} tasks/s"
                    if scenario.throughput
                    else f"makespan {f.makespan_s:.1f} s"
                )
                progress(f"{scenario.name}: {mode} done, {what} (wall {f.wall_s:.2f} s)")
            runs.append(run)
        results.append(ScenarioResult(scenario, tuple(runs)))
    return results
