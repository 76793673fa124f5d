"""Reading the log that tests/support/cmd_host.py writes."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

CMD_HOST = Path(__file__).with_name("cmd_host.py")


def cmd_argv(logfile: str | Path) -> list[str]:
    """The argv of a command pool that runs cmd_host.py with this interpreter."""
    return [sys.executable, str(CMD_HOST), str(logfile)]


@dataclass
class Run:
    task: str
    attempt: int
    pool: str
    pid: int
    start: float  # time.time()
    end: float | None = None  # None: killed (or still running)
    child_pids: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.end is not None


def read_cmd_log(path: str | Path) -> list[Run]:
    """Runs in the order they started; a missing log means no runs."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    runs: list[Run] = []
    open_runs: dict[tuple[str, int], Run] = {}  # (task, pid) -> the run not yet ended
    for line in lines:
        if not line.strip():
            continue
        kind, *fields = line.split()
        if kind == "start":
            task, attempt, pool, pid, when = fields
            run = Run(task, int(attempt), pool, int(pid), float(when))
            runs.append(run)
            open_runs[(task, run.pid)] = run
        elif kind == "end":
            task, _attempt, _pool, pid, when = fields
            open_runs.pop((task, int(pid))).end = float(when)
        elif kind == "child":
            task, pid, parent = fields
            open_runs[(task, int(parent))].child_pids.append(int(pid))
        else:
            raise ValueError(f"{path}: unexpected line {line!r}")
    return runs


def max_overlap(runs: list[Run], pool: str | None = None) -> int:
    """The peak number of runs in progress at once; runs without an end never end.

    A run that ends at the very instant another starts does not overlap it.
    """
    events: list[tuple[float, int]] = []
    for run in runs:
        if pool is None or run.pool == pool:
            events.append((run.start, 1))
            events.append((math.inf if run.end is None else run.end, -1))
    peak = current = 0
    for _, delta in sorted(events):  # at equal times -1 sorts before +1
        current += delta
        peak = max(peak, current)
    return peak


def runs_by_task(runs: list[Run]) -> dict[str, list[Run]]:
    by_task: dict[str, list[Run]] = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(run)
    return by_task
