"""Timelines: tasks laid out on one lane per slot, and drawn as text (a Gantt chart)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ygg.bench.figures import ScenarioResult, run_figures
from ygg.bench.metrics import assign_lanes
from ygg.bench.runner import Run, Span

KIND_LETTERS = {
    "reasoning": "R",
    "general": "G",
    "text-processing": "T",
    "summarize": "S",
    "text-extraction": "X",
    "code-generation": "C",
    "code-refactor": "F",
}
IDLE = "."  # a slot with nothing running, inside the run's makespan


@dataclass(frozen=True)
class Lane:
    pool: str
    slot: int  # 1, 2, ...
    spans: tuple[Span, ...]  # in order of start


def lanes(run: Run) -> list[Lane]:
    """One lane per configured slot of every pool (more only if the recorded intervals of a
    pool overlapped more than its slots allow), tasks placed greedily by start time."""
    result: list[Lane] = []
    for pool in run.pools:
        spans = sorted((s for s in run.spans if s.pool == pool.name), key=lambda s: s.start_s)
        assigned = assign_lanes([(s.start_s, s.end_s) for s in spans])
        count = max([pool.slots, *(n + 1 for n in assigned)])
        for n in range(count):
            on_lane = tuple(s for s, lane in zip(spans, assigned, strict=True) if lane == n)
            result.append(Lane(pool.name, n + 1, on_lane))
    return result


def letter(kind: str) -> str:
    return KIND_LETTERS.get(kind, (kind[:1] or "?").upper())


def nice_step(total: float, target: int = 8) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about `target` ticks."""
    if total <= 0:
        return 1.0
    raw = total / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _column(t: float, total: float, width: int) -> int:
    return min(width, max(0, round(t / total * width)))


def _row(lane: Lane, makespan: float, total: float, width: int) -> str:
    cells = [IDLE] * _column(makespan, total, width) + [" "] * width
    cells = cells[:width]
    for i, span in enumerate(lane.spans):
        first = _column(span.start_s, total, width)
        last = max(_column(span.end_s, total, width), first + 1)
        char = letter(span.kind)
        char = char.upper() if i % 2 == 0 else char.lower()  # neighbours stay distinguishable
        for col in range(first, min(last, width)):
            cells[col] = char
    return "".join(cells)


def _axis(total: float, width: int, indent: int) -> list[str]:
    step = nice_step(total)
    ticks = [step * i for i in range(int(total / step + 1e-9) + 1)]
    marks = ["-"] * (width + 1)
    labels = [" "] * (width + 12)
    free_from = 0
    for t in ticks:
        col = _column(t, total, width)
        marks[col] = "+"
        text = f"{t:g}"
        if col >= free_from:
            labels[col : col + len(text)] = list(text)
            free_from = col + len(text) + 1
    unit = " s (simulated)"
    return [" " * indent + "".join(marks), " " * indent + "".join(labels).rstrip() + unit]


def text_gantt(result: ScenarioResult, width: int = 72) -> str:
    """Legacy above async on one time axis: a lane per slot, a letter per task kind."""
    runs = result.runs
    total = max((run.makespan_s for run in runs), default=0.0) or 1.0
    name_w = max(len(p.name) for run in runs for p in run.pools)
    lines: list[str] = []
    for run in runs:
        f = run_figures(run)
        bound = f" (lower bound {f.bound_s:.1f} s)" if f.bound_s else ""
        lines.append(f"{run.mode}: makespan {f.makespan_s:.1f} s{bound}")
        previous = ""
        for lane in lanes(run):
            label = lane.pool if lane.pool != previous else ""
            previous = lane.pool
            row = _row(lane, run.makespan_s, total, width)
            lines.append(f"{label:<{name_w}} {lane.slot:>1} |{row}|")
        lines.extend(_axis(total, width, name_w + 4))
    lines.append(legend(result.runs))
    return "\n".join(lines)


def legend(runs: Sequence[Run]) -> str:
    kinds = sorted({s.kind for run in runs for s in run.spans}, key=_kind_order)
    keys = "  ".join(f"{letter(kind)} {kind}" for kind in kinds)
    return f"{keys}\n{IDLE} idle slot; consecutive tasks on a lane alternate upper and lower case"


def _kind_order(kind: str) -> tuple[int, str]:
    order = list(KIND_LETTERS)
    return (order.index(kind) if kind in order else len(order), kind)
