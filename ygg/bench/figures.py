"""From recorded runs to figures: makespans against lower bounds, utilisation, speed-ups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ygg.bench.metrics import lower_bound, max_concurrency, pool_bound, utilisation
from ygg.bench.runner import Run
from ygg.bench.scenarios import Scenario


@dataclass(frozen=True)
class PoolFigures:
    name: str
    slots: int  # configured
    mode_slots: int  # used by the mode: configured (async) or 1 (legacy)
    tasks: int
    busy_s: float  # simulated task-seconds run in the pool
    bound_s: float  # pool_bound of the pool's planned durations on mode_slots
    utilisation: float  # busy_s / (slots * makespan): the share of the configured slots used
    max_concurrency: int  # most tasks running at once, from the recorded intervals


@dataclass(frozen=True)
class RunFigures:
    mode: str
    tasks: int
    done: int
    makespan_s: float  # simulated seconds
    bound_s: float | None  # None for throughput runs (zero-second tasks)
    ratio: float | None  # makespan / bound
    utilisation: float  # all pools: busy / (all configured slots * makespan)
    tasks_per_s: float  # real tasks per real second, first start to last finish
    wall_s: float  # real seconds of the dispatcher run
    pools: tuple[PoolFigures, ...]


def planned_durations(run: Run) -> dict[str, list[float]]:
    """Each pool's planned task durations (simulated seconds), by the kinds it serves."""
    pool_of: dict[str, str] = {}
    for pool in run.pools:
        for kind in pool.kinds:
            pool_of.setdefault(kind, pool.name)  # the first pool serving a kind, as submit picks
    planned: dict[str, list[float]] = {pool.name: [] for pool in run.pools}
    for job in run.scenario.jobs:
        planned[pool_of[job.kind]].append(job.seconds)
    return planned


def _pool_figures(run: Run) -> tuple[PoolFigures, ...]:
    planned = planned_durations(run)
    rows = []
    for pool in run.pools:
        spans = [(s.start_s, s.end_s) for s in run.spans if s.pool == pool.name]
        busy = sum(end - start for start, end in spans)
        mode_slots = run.mode_slots(pool)
        rows.append(
            PoolFigures(
                name=pool.name,
                slots=pool.slots,
                mode_slots=mode_slots,
                tasks=len(spans),
                busy_s=busy,
                bound_s=pool_bound(planned[pool.name], mode_slots),
                utilisation=utilisation(busy, pool.slots, run.makespan_s),
                max_concurrency=max_concurrency(spans),
            )
        )
    return tuple(rows)


def run_figures(run: Run) -> RunFigures:
    pools = _pool_figures(run)
    makespan = run.makespan_s
    bound: float | None = lower_bound(planned_durations(run), {p.name: p.mode_slots for p in pools})
    if run.scenario.throughput or not bound:
        bound = None
    real_span = makespan * run.scale
    return RunFigures(
        mode=run.mode,
        tasks=len(run.scenario.jobs),
        done=run.statuses.get("done", 0),
        makespan_s=makespan,
        bound_s=bound,
        ratio=makespan / bound if bound else None,
        utilisation=utilisation(
            sum(p.busy_s for p in pools), sum(p.slots for p in pools), makespan
        ),
        tasks_per_s=len(run.spans) / real_span if real_span > 0 else 0.0,
        wall_s=run.wall_s,
        pools=pools,
    )


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    runs: tuple[Run, ...]  # legacy first, then async, as run

    def run(self, mode: str) -> Run | None:
        return next((r for r in self.runs if r.mode == mode), None)

    @property
    def speedup(self) -> float | None:
        """Legacy makespan / async makespan (equally: async tasks/s / legacy tasks/s)."""
        legacy, fast = self.run("legacy"), self.run("async")
        if legacy is None or fast is None or fast.makespan_s <= 0:
            return None
        return legacy.makespan_s / fast.makespan_s


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def run_json(run: Run) -> dict[str, Any]:
    f = run_figures(run)
    data: dict[str, Any] = {
        "mode": f.mode,
        "tasks": f.tasks,
        "done": f.done,
        "statuses": run.statuses,
        "makespan_s": _round(f.makespan_s),
        "bound_s": _round(f.bound_s),
        "ratio": _round(f.ratio, 4),
        "utilisation": _round(f.utilisation, 4),
        "tasks_per_s": _round(f.tasks_per_s, 1),
        "real_span_s": _round(f.makespan_s * run.scale, 4),
        "wall_s": _round(f.wall_s),
        "pools": {
            p.name: {
                "slots": p.slots,
                "mode_slots": p.mode_slots,
                "tasks": p.tasks,
                "busy_s": _round(p.busy_s),
                "bound_s": _round(p.bound_s),
                "utilisation": _round(p.utilisation, 4),
                "max_concurrency": p.max_concurrency,
            }
            for p in f.pools
        },
    }
    if not run.scenario.throughput:
        data["spans"] = [
            {
                "id": s.task_id,
                "kind": s.kind,
                "pool": s.pool,
                "start_s": _round(s.start_s),
                "end_s": _round(s.end_s),
            }
            for s in run.spans
        ]
    return data


def document(results: Sequence[ScenarioResult], scale: float) -> dict[str, Any]:
    """Every figure of a bench invocation, as `ygg bench --json` prints it."""
    return {
        "scale": scale,
        "units": "simulated seconds (real seconds = simulated x scale), except tasks_per_s, "
        "real_span_s and wall_s, which are real",
        "scenarios": [
            {
                "name": r.scenario.name,
                "summary": r.scenario.summary,
                "tasks": len(r.scenario.jobs),
                "throughput": r.scenario.throughput,
                "speedup": _round(r.speedup, 4),
                "runs": {run.mode: run_json(run) for run in r.runs},
            }
            for r in results
        ],
    }
