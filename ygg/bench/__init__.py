"""`ygg bench` and `ygg demo`: the legacy and async dispatchers on time-scaled simulated
scenarios, their makespans against lower bounds, and their timelines as text and SVG."""

from __future__ import annotations

from ygg.bench.figures import ScenarioResult, document, run_figures
from ygg.bench.metrics import assign_lanes, lower_bound, max_concurrency, pool_bound
from ygg.bench.runner import MODES, Run, Span, run_scenario
from ygg.bench.scenarios import NAMES, Scenario, scenarios
from ygg.bench.suite import DEFAULT_SCALE, check_scale, modes_of, run_suite

__all__ = [
    "DEFAULT_SCALE",
    "MODES",
    "NAMES",
    "Run",
    "Scenario",
    "ScenarioResult",
    "Span",
    "assign_lanes",
    "check_scale",
    "document",
    "lower_bound",
    "max_concurrency",
    "modes_of",
    "pool_bound",
    "run_figures",
    "run_scenario",
    "run_suite",
    "scenarios",
]
