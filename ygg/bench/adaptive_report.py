"""`ygg bench adaptive`'s figures: adaptive slots against the best fixed setting, per host
model, with the targets; as text, as JSON, and the limit over time as an SVG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from ygg.bench.adaptive import ModelResult, SettingRun, converged_at_s

THROUGHPUT_TARGET = 0.95  # of the best fixed setting's
P95_TARGET = 1.2  # times the best fixed setting's
CONVERGE_TARGET_S = 60.0


@dataclass(frozen=True)
class Verdict:
    result: ModelResult
    best: SettingRun  # the fixed setting with the highest throughput
    throughput_ratio: float
    p95_ratio: float
    converged_s: float | None
    final_limit: int | None

    @property
    def passed(self) -> dict[str, bool]:
        return {
            "throughput": self.throughput_ratio >= THROUGHPUT_TARGET,
            "p95": self.p95_ratio <= P95_TARGET,
            "converged": self.converged_s is not None and self.converged_s <= CONVERGE_TARGET_S,
        }


def verdict(result: ModelResult) -> Verdict:
    best = max(result.fixed, key=lambda r: (r.throughput, -r.p95_s))
    adaptive = result.adaptive
    limits = adaptive.limits
    return Verdict(
        result,
        best,
        adaptive.throughput / best.throughput if best.throughput else math.nan,
        adaptive.p95_s / best.p95_s if best.p95_s else math.nan,
        converged_at_s(limits),
        limits[-1][1] if limits else None,
    )


def _mark(ok: bool) -> str:
    return "yes" if ok else "NO"


def summary_table(verdicts: Sequence[Verdict]) -> list[str]:
    lines = [
        "model       host                  best fixed  tasks/s  p95 s   adaptive  tasks/s "
        "(ratio)  p95 s (ratio)  limit  converged s  targets met",
    ]
    for v in verdicts:
        a, ok = v.result.adaptive, v.passed
        met = ", ".join(f"{k} {_mark(flag)}" for k, flag in ok.items())
        conv = "never" if v.converged_s is None else f"{v.converged_s:.0f}"
        lines.append(
            f"{v.result.model.name:<11} {v.result.model.summary:<21} {v.best.setting:>10}  "
            f"{v.best.throughput:7.2f}  {v.best.p95_s:5.2f}   adaptive  {a.throughput:7.2f} "
            f"({v.throughput_ratio:4.2f})  {a.p95_s:5.2f} ({v.p95_ratio:4.2f})  "
            f"{v.final_limit if v.final_limit is not None else '?':>5}  {conv:>11}  {met}"
        )
    return lines


def fixed_table(result: ModelResult) -> list[str]:
    """Every fixed setting of one model, a column each."""
    runs = result.fixed
    return [
        f"{result.model.name} ({result.model.summary}), fixed slots:",
        "  slots    " + "".join(f"{r.setting:>6}" for r in runs),
        "  tasks/s  " + "".join(f"{r.throughput:6.2f}" for r in runs),
        "  p95 s    " + "".join(f"{r.p95_s:6.1f}" for r in runs),
    ]


def text_report(verdicts: Sequence[Verdict], note: str) -> str:
    parts = [note, ""]
    for v in verdicts:
        parts += [*fixed_table(v.result), ""]
    parts += summary_table(verdicts)
    return "\n".join(parts)


def _run_json(run: SettingRun) -> dict[str, Any]:
    return {
        "setting": run.setting,
        "done": run.done,
        "duration_s": run.duration_s,
        "tasks_per_s": round(run.throughput, 4),
        "p95_s": round(run.p95_s, 4) if math.isfinite(run.p95_s) else None,
    }


def document(verdicts: Sequence[Verdict], scale: float) -> dict[str, Any]:
    return {
        "scale": scale,
        "targets": {
            "throughput_ratio_min": THROUGHPUT_TARGET,
            "p95_ratio_max": P95_TARGET,
            "converged_within_s": CONVERGE_TARGET_S,
        },
        "models": [
            {
                "name": v.result.model.name,
                "host": v.result.model.summary,
                "fixed": [_run_json(r) for r in v.result.fixed],
                "adaptive": {
                    **_run_json(v.result.adaptive),
                    "limits": [[t, n] for t, n in v.result.adaptive.limits],
                    "final_limit": v.final_limit,
                    "converged_s": v.converged_s,
                },
                "best_fixed": v.best.setting,
                "throughput_ratio": round(v.throughput_ratio, 4),
                "p95_ratio": round(v.p95_ratio, 4),
                "passed": v.passed,
            }
            for v in verdicts
        ],
    }


# --- the limit over time, as an SVG ----------------------------------------------------------
WIDTH, LEFT, RIGHT, PANEL_H, GAP = 900, 150, 20, 110, 34
FONT = "font-family='system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif'"


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start") -> str:
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}'>"
        f"{escape(text)}</text>"
    )


def _panel(v: Verdict, top: float, ceiling: int) -> list[str]:
    result, plot_w = v.result, WIDTH - LEFT - RIGHT
    limits = result.adaptive.limits
    total_s = max(result.adaptive.duration_s, 1.0)

    def x(t: float) -> float:
        return LEFT + plot_w * min(t, total_s) / total_s

    def y(n: float) -> float:
        return top + PANEL_H - PANEL_H * n / ceiling

    out = [
        _text(10, top + 16, result.model.name, 13),
        _text(10, top + 32, result.model.summary, 11),
        _text(10, top + 48, f"best fixed: {v.best.setting}", 11),
        f"<rect x='{LEFT}' y='{top}' width='{plot_w}' height='{PANEL_H}' fill='#f7f7f7'/>",
    ]
    for n in range(0, ceiling + 1, 4):
        out.append(_text(LEFT - 6, y(n) + 4, str(n), 10, "end"))
    best = result.model.best_concurrency
    out.append(
        f"<line x1='{LEFT}' y1='{y(best):.1f}' x2='{LEFT + plot_w}' y2='{y(best):.1f}' "
        "stroke='#c0392b' stroke-dasharray='5,4'/>"
    )
    points, last = [], None
    for t, n in limits:  # a step line: the limit holds until it changes
        if n == last:
            continue
        if last is not None:
            points.append(f"{x(t):.1f},{y(last):.1f}")
        points.append(f"{x(t):.1f},{y(n):.1f}")
        last = n
    if points:
        points.append(f"{x(total_s):.1f},{y(last or 0):.1f}")
        line = " ".join(points)
        out.append(f"<polyline fill='none' stroke='#4e79a7' stroke-width='1.6' points='{line}'/>")
    return out


def svg_limits(verdicts: Sequence[Verdict], subtitle: str, ceiling: int) -> str:
    height = 70 + len(verdicts) * (PANEL_H + GAP) + 20
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' {FONT}>",
        f"<rect width='{WIDTH}' height='{height}' fill='white'/>",
        _text(10, 22, "ygg bench adaptive: the adaptive limit over time", 16),
        _text(10, 40, subtitle, 11),
        _text(10, 56, "blue: the limit; red dashed: the host's knee or capacity", 11),
    ]
    top = 70.0
    for v in verdicts:
        out += _panel(v, top, ceiling)
        total = v.result.adaptive.duration_s
        for step in range(0, int(total) + 1, 60):
            px = LEFT + (WIDTH - LEFT - RIGHT) * step / max(total, 1.0)
            out.append(_text(px, top + PANEL_H + 13, f"{step} s", 10, "middle"))
        top += PANEL_H + GAP
    out.append("</svg>")
    return "\n".join(out) + "\n"
