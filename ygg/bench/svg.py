"""Timelines as an SVG picture, written by hand: a lane per slot, tasks coloured by kind."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ygg.bench.figures import ScenarioResult, run_figures
from ygg.bench.gantt import KIND_LETTERS, lanes, nice_step
from ygg.bench.runner import Run

WIDTH = 1000
LEFT = 170  # lane labels
RIGHT = 30
PLOT = WIDTH - LEFT - RIGHT
LANE_H = 14
LANE_PITCH = 18
POOL_GAP = 6
FONT = "font-family='system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif'"
KIND_COLOURS = {  # one hue family per pool of the demo deployment
    "reasoning": "#4e79a7",
    "general": "#9ecae9",
    "text-processing": "#e8731a",
    "summarize": "#f6b26b",
    "text-extraction": "#c0392b",
    "code-generation": "#3d8b37",
    "code-refactor": "#9bd17d",
}
OTHER_COLOUR = "#b0a8a4"


def colour(kind: str) -> str:
    return KIND_COLOURS.get(kind, OTHER_COLOUR)


def _text(x: float, y: float, text: str, size: int = 12, **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}='{escape(v)}'" for k, v in attrs.items())
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}'{extra}>{escape(text)}</text>"


def _rect(x: float, y: float, w: float, h: float, fill: str, cls: str, tip: str = "") -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (
        f"<rect class='{cls}' x='{x:.2f}' y='{y:.1f}' width='{w:.2f}' height='{h:.1f}' "
        f"fill='{fill}' stroke='#ffffff' stroke-width='0.6'>{title}</rect>"
    )


def _legend(kinds: Sequence[str], y: float) -> list[str]:
    out, x = [], float(LEFT)
    for kind in kinds:
        out.append(_rect(x, y - 10, 12, 12, colour(kind), "legend"))
        out.append(_text(x + 16, y, kind))
        x += 16 + 6.6 * len(kind) + 22
    return out


def _axis(total: float, x_of: float, y: float) -> list[str]:
    step = nice_step(total)
    out = [f"<line x1='{LEFT}' y1='{y}' x2='{LEFT + PLOT}' y2='{y}' stroke='#555'/>"]
    t = 0.0
    while t <= total + 1e-9:
        x = LEFT + t * x_of
        out.append(f"<line x1='{x:.1f}' y1='{y}' x2='{x:.1f}' y2='{y + 4}' stroke='#555'/>")
        out.append(_text(x, y + 16, f"{t:g}", 10, text_anchor="middle", fill="#333"))
        t += step
    out.append(_text(LEFT + PLOT, y + 30, "simulated seconds", 10, text_anchor="end", fill="#555"))
    return out


def _marker(x: float, top: float, bottom: float, label: str, dashed: bool) -> list[str]:
    """A vertical line; the dashed one (the bound) is labelled on its left, the other on its
    right, so the two labels stay apart when the makespan is close to the bound."""
    dash = " stroke-dasharray='4 3'" if dashed else ""
    x_text, anchor = (x - 3, "end") if dashed else (x + 3, "start")
    return [
        f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{bottom}' stroke='#222'"
        f" stroke-width='1'{dash}/>",
        _text(x_text, top + 8, label, 9, fill="#222", text_anchor=anchor),
    ]


def _panel(run: Run, total: float, y: float) -> tuple[list[str], float]:
    """One run: its title, a lane per slot, markers at the makespan and the bound, an axis."""
    f = run_figures(run)
    x_of = PLOT / total
    title = f"{run.mode}: makespan {f.makespan_s:.1f} s"
    if f.bound_s:
        title += f", lower bound {f.bound_s:.1f} s (ratio {f.ratio or 0:.2f})"
    slots = "one task per pool at a time" if run.mode == "legacy" else "every slot of every pool"
    out = [_text(LEFT, y, f"{title}; {slots}", 12, font_weight="600")]
    y += 10
    top, previous = y, ""
    for lane in lanes(run):
        if lane.pool != previous and previous:
            y += POOL_GAP
        if lane.pool != previous:
            out.append(_text(LEFT - 22, y + 11, lane.pool, 11, text_anchor="end"))
        previous = lane.pool
        out.append(_text(LEFT - 6, y + 11, str(lane.slot), 10, text_anchor="end", fill="#777"))
        out.append(_rect(LEFT, y, PLOT, LANE_H, "#f1f1f1", "lane"))
        for span in lane.spans:
            x, w = LEFT + span.start_s * x_of, max((span.end_s - span.start_s) * x_of, 1.0)
            tip = f"#{span.task_id} {span.kind}: {span.start_s:.1f}-{span.end_s:.1f} s"
            out.append(_rect(x, y, w, LANE_H, colour(span.kind), "task", tip))
        y += LANE_PITCH
    out += _marker(LEFT + f.makespan_s * x_of, top - 2, y, "end", dashed=False)
    if f.bound_s:
        out += _marker(LEFT + f.bound_s * x_of, top - 2, y, "bound", dashed=True)
    out += _axis(total, x_of, y + 2)
    return out, y + 48


def _scenario(result: ScenarioResult, y: float) -> tuple[list[str], float]:
    scenario = result.scenario
    heading = f"{scenario.name}: {scenario.summary}"
    if result.speedup is not None:
        heading += f"; async {result.speedup:.2f}x faster"
    out = [_text(20, y, heading, 15, font_weight="700")]
    y += 26
    total = max(run.makespan_s for run in result.runs) or 1.0
    for run in result.runs:
        part, y = _panel(run, total, y)
        out += part
    return out, y + 8


def svg_timelines(results: Sequence[ScenarioResult], title: str, subtitle: Sequence[str]) -> str:
    """The timelines of every scenario with one (throughput runs have none), as SVG text."""
    shown = [r for r in results if not r.scenario.throughput]
    kinds = sorted(
        {s.kind for r in shown for run in r.runs for s in run.spans},
        key=lambda k: (list(KIND_LETTERS).index(k) if k in KIND_LETTERS else 99, k),
    )
    body = [_text(20, 30, title, 18, font_weight="700")]
    y = 50.0
    for line in subtitle:
        body.append(_text(20, y, line, 12, fill="#444"))
        y += 16
    y += 10
    body += [_text(20, y, "task kinds:", 12, fill="#444"), *_legend(kinds, y)]
    y += 36
    for result in shown:
        part, y = _scenario(result, y)
        body += part
    if not shown:
        body.append(_text(20, y, "(throughput runs have no timeline to draw)", 12))
        y += 20
    height = int(y)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' {FONT}>\n"
        f"<rect class='background' x='0' y='0' width='{WIDTH}' height='{height}' fill='#ffffff'/>\n"
        + "\n".join(body)
        + "\n</svg>\n"
    )
