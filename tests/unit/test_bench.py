"""The benchmark's arithmetic and drawings, on hand-computed cases and made-up runs."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ygg.bench import assign_lanes, check_scale, lower_bound, max_concurrency, modes_of, pool_bound
from ygg.bench.figures import ScenarioResult, planned_durations, run_figures
from ygg.bench.gantt import lanes, nice_step, text_gantt
from ygg.bench.runner import PoolShape, Run, Span, prepare
from ygg.bench.scenarios import MIXED_THIRTY, NAMES, SIX, TWENTY_TWENTY, Job, Scenario, scenarios
from ygg.bench.svg import svg_timelines
from ygg.errors import InvalidInput

SVG = "{http://www.w3.org/2000/svg}"
POOLS = (
    PoolShape("surtr-reasoning", 2, ("reasoning", "general")),
    PoolShape("fenrir-chat", 3, ("text-processing", "summarize", "text-extraction")),
    PoolShape("skadi-code", 2, ("code-generation", "code-refactor")),
)


# --- lower bounds ------------------------------------------------------------------------------
def test_equal_tasks_take_whole_waves() -> None:
    assert pool_bound([10.0] * 20, 2) == 100  # 10 waves
    assert pool_bound([10.0] * 20, 3) == 70  # 7 waves, the last one two tasks wide
    assert pool_bound([10.0] * 20, 1) == 200  # legacy: one at a time
    assert pool_bound([10.0] * 3, 5) == 10
    assert pool_bound([], 2) == 0


def test_a_single_long_task_dominates() -> None:
    # waves ceil(4/3) * 1 = 2, work 103 / 3 = 34.3, longest 100
    assert pool_bound([100.0, 1.0, 1.0, 1.0], 3) == 100


def test_total_work_dominates_unequal_tasks() -> None:
    # waves 2 * 6 = 12, longest 9, work 27 / 2 = 13.5
    assert pool_bound([6.0, 6.0, 6.0, 9.0], 2) == 13.5


def test_slots_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="slots must be at least 1"):
        pool_bound([1.0], 0)


def test_the_bound_is_the_slowest_pool() -> None:
    durations = {"skadi": [10.0] * 20, "fenrir": [10.0] * 20, "surtr": []}
    assert lower_bound(durations, {"skadi": 2, "fenrir": 3, "surtr": 2}) == 100  # max(100, 70, 0)
    assert lower_bound(durations, {"skadi": 1, "fenrir": 1, "surtr": 1}) == 200
    mixed = {"skadi": [30.0] * 10, "fenrir": [20.0] * 10, "surtr": [40.0] * 10}
    assert lower_bound(mixed, {"skadi": 2, "fenrir": 3, "surtr": 2}) == 200  # 150, 80, 200
    assert lower_bound(mixed, {"skadi": 1, "fenrir": 1, "surtr": 1}) == 400  # 300, 200, 400
    assert lower_bound({}, {}) == 0


@pytest.mark.parametrize(
    ("scenario", "legacy", "fast"),
    [(SIX, 130, 85), (TWENTY_TWENTY, 200, 100), (MIXED_THIRTY, 400, 200)],
)
def test_scenario_bounds_on_the_demo_pools(
    tmp_path: Path, scenario: Scenario, legacy: float, fast: float
) -> None:
    config = prepare(tmp_path)  # the real demo configuration and its bench drop-in
    assert config.daemon.poll_s == 0.05
    shapes = tuple(PoolShape(p.name, p.slots, p.kinds) for p in config.pools.values())
    assert shapes == POOLS
    for mode, expected in (("legacy", legacy), ("async", fast)):
        run = Run(scenario, mode, 0.01, shapes, (), {}, 0.0)
        slots = {p.name: run.mode_slots(p) for p in shapes}
        assert lower_bound(planned_durations(run), slots) == expected


# --- concurrency and lanes ---------------------------------------------------------------------
def test_touching_intervals_do_not_overlap() -> None:
    assert max_concurrency([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_concurrency([(0, 2), (1, 3), (1.5, 1.6)]) == 3
    assert max_concurrency([]) == 0
    # a zero-length task holds its slot for an instant
    assert max_concurrency([(1, 1), (1, 2)]) == 2
    assert max_concurrency([(0, 1), (1, 1)]) == 1
    assert max_concurrency([(1, 1), (1, 1)]) == 2


def _check_lanes(intervals: list[tuple[float, float]]) -> int:
    assigned = assign_lanes(intervals)
    for lane in set(assigned):
        on_lane = [iv for iv, a in zip(intervals, assigned, strict=True) if a == lane]
        assert max_concurrency(on_lane) == 1, f"overlap on lane {lane}: {sorted(on_lane)}"
    return len(set(assigned))


def test_lanes_never_hold_overlapping_tasks() -> None:
    rng = random.Random(7)
    for _ in range(200):
        intervals = []
        for _ in range(rng.randint(0, 30)):
            start = rng.uniform(0, 50)
            intervals.append((start, start + rng.choice([0.0, rng.uniform(0, 20)])))
        assert _check_lanes(intervals) == max_concurrency(intervals)


def _slot_schedule(durations: list[float], slots: int) -> list[tuple[float, float]]:
    """What a dispatcher that respects `slots` does: each task on the slot free first."""
    free = [0.0] * slots
    intervals = []
    for d in durations:
        slot = min(range(slots), key=lambda s: free[s])
        intervals.append((free[slot], free[slot] + d))
        free[slot] += d
    return intervals


def test_lanes_fit_in_the_slots_when_the_dispatcher_respects_them() -> None:
    rng = random.Random(3)
    for slots in (1, 2, 3):
        durations = [rng.choice([0.001, 1.0, 2.5, 10.0]) for _ in range(40)]
        assert _check_lanes(_slot_schedule(durations, slots)) <= slots


# --- figures and drawings on a made-up run -----------------------------------------------------
def _made_up(mode: str, spans: list[Span]) -> Run:
    jobs = tuple(Job(f"t{s.task_id}", s.kind, 2, 10.0) for s in spans)
    return Run(Scenario("made-up", "four code tasks", jobs), mode, 0.01, POOLS, tuple(spans), {}, 1)


def _code(task_id: int, start: float) -> Span:
    return Span(task_id, "code-generation", "skadi-code", start, start + 10)


def test_figures_of_a_made_up_run() -> None:
    fast = _made_up("async", [_code(1, 0), _code(2, 0), _code(3, 10), _code(4, 11)])
    f = run_figures(fast)
    assert (f.makespan_s, f.bound_s, f.tasks_per_s) == (21, 20, pytest.approx(4 / 0.21))
    assert f.ratio == pytest.approx(21 / 20)
    skadi = next(p for p in f.pools if p.name == "skadi-code")
    assert (skadi.max_concurrency, skadi.busy_s, skadi.mode_slots) == (2, 40, 2)
    assert skadi.utilisation == pytest.approx(40 / (2 * 21))
    assert f.utilisation == pytest.approx(40 / (7 * 21))
    legacy = _made_up("legacy", [_code(i + 1, 10 * i) for i in range(4)])
    assert run_figures(legacy).bound_s == 40
    result = ScenarioResult(legacy.scenario, (legacy, fast))
    assert result.speedup == pytest.approx(40 / 21)


def test_lanes_of_a_run_show_every_slot() -> None:
    run = _made_up("async", [_code(1, 0), _code(2, 0), _code(3, 10), _code(4, 11)])
    laid = lanes(run)
    assert [(lane.pool, lane.slot) for lane in laid][-2:] == [("skadi-code", 1), ("skadi-code", 2)]
    assert len(laid) == 7  # 2 + 3 + 2 slots, empty ones included
    assert sum(len(lane.spans) for lane in laid) == 4


def test_text_gantt_draws_a_lane_per_slot() -> None:
    legacy = _made_up("legacy", [_code(i + 1, 10 * i) for i in range(4)])
    chart = text_gantt(ScenarioResult(legacy.scenario, (legacy,)), width=40)
    rows = [line for line in chart.splitlines() if line.endswith("|")]
    assert len(rows) == 7
    assert "CCCCCCCCCCccccccccccCCCCCCCCCCcccccccccc" in chart  # alternating case per task


def test_svg_is_well_formed_with_one_rect_per_task() -> None:
    legacy = _made_up("legacy", [_code(i + 1, 10 * i) for i in range(4)])
    fast = _made_up("async", [_code(1, 0), _code(2, 0), _code(3, 10), _code(4, 11)])
    text = svg_timelines([ScenarioResult(legacy.scenario, (legacy, fast))], "t <&> 'x'", ["s"])
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    tasks = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "task"]
    assert len(tasks) == 8
    assert all(float(r.get("width", 0)) > 0 for r in tasks)
    assert "t <&> 'x'" in [t.text for t in root.iter(f"{SVG}text")]


def test_nice_steps() -> None:
    assert [nice_step(t) for t in (130, 200, 8, 0.5)] == [20, 50, 1, 0.1]


# --- choosing scenarios and options ------------------------------------------------------------
def test_scenarios_by_name() -> None:
    assert [s.name for s in scenarios([])] == list(NAMES)
    assert [s.name for s in scenarios(["six", "six", "throughput"], tasks=9)] == [
        "six",
        "throughput",
    ]
    assert len(scenarios(["throughput"], tasks=9)[0].jobs) == 9
    with pytest.raises(InvalidInput, match="six, twenty-twenty, mixed-thirty, throughput"):
        scenarios(["sixx"])
    with pytest.raises(InvalidInput):
        scenarios(["throughput"], tasks=0)


def test_scale_and_mode_are_checked() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInput):
            check_scale(bad)
    assert modes_of("both") == ("legacy", "async")
    assert modes_of("async") == ("async",)
    with pytest.raises(InvalidInput):
        modes_of("fast")
