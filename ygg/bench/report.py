"""The terminal report: a table per scenario, then its timelines."""

from __future__ import annotations

from ygg.bench.figures import RunFigures, ScenarioResult, run_figures
from ygg.bench.gantt import text_gantt


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _timeline_table(result: ScenarioResult) -> list[str]:
    figures = [run_figures(run) for run in result.runs]
    names = [p.name for p in figures[0].pools]
    widths = [max(len(n), 4) for n in names]
    head = f"  {'mode':<8}{'makespan':>10}{'bound':>10}{'ratio':>7}"
    head += "".join(f"  {n:>{w}}" for n, w in zip(names, widths, strict=True))
    lines = [head + f"{'all':>6}{'wall':>8}"]
    for f in figures:
        row = f"  {f.mode:<8}{f.makespan_s:>8.1f} s{f.bound_s or 0:>8.1f} s{f.ratio or 0:>7.2f}"
        row += "".join(
            f"  {_percent(p.utilisation):>{w}}" for p, w in zip(f.pools, widths, strict=True)
        )
        lines.append(row + f"{_percent(f.utilisation):>6}{f.wall_s:>6.1f} s")
    lines.append(
        "  makespan: first start to last finish; bound: the least any dispatcher could do with "
        "the slots"
    )
    lines.append(
        "  the mode uses (legacy: 1 per pool); per pool: busy task-seconds / (slots x makespan)"
    )
    return lines


def _throughput_table(figures: list[RunFigures], scale: float) -> list[str]:
    lines = [f"  {'mode':<8}{'tasks/s':>10}{'span':>10}{'wall':>9}"]
    for f in figures:
        span = f.makespan_s * scale
        lines.append(f"  {f.mode:<8}{f.tasks_per_s:>10,.0f}{span:>8.2f} s{f.wall_s:>7.2f} s")
    lines.append("  span: first start to last finish, real seconds; wall: the whole run")
    return lines


def _speedup(result: ScenarioResult) -> str | None:
    legacy, fast = result.run("legacy"), result.run("async")
    if legacy is None or fast is None or result.speedup is None:
        return None
    if result.scenario.throughput:
        return f"  speed-up: {result.speedup:.2f}x the legacy tasks/s"
    return (
        f"  speed-up: {result.speedup:.2f}x "
        f"(legacy {legacy.makespan_s:.1f} s -> async {fast.makespan_s:.1f} s)"
    )


def scenario_report(result: ScenarioResult, *, timelines: bool = True) -> str:
    """The table of one scenario's runs, the speed-up and (not for throughput) the timelines."""
    scenario = result.scenario
    scale = result.runs[0].scale
    lines = [
        f"{scenario.name}: {scenario.summary}",
        f"  {len(scenario.jobs)} tasks; 1 simulated second = {scale * 1000:g} ms",
    ]
    if scenario.throughput:
        lines += _throughput_table([run_figures(run) for run in result.runs], scale)
    else:
        lines += _timeline_table(result)
    speedup = _speedup(result)
    if speedup:
        lines.append(speedup)
    if timelines and not scenario.throughput:
        lines += ["", text_gantt(result)]
    return "\n".join(lines)
