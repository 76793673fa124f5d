"""Reading the log that tests/support/run_host.py writes, and judging it from the host side.

A run's stop time is its `end` line; a run without one (killed) stopped at its last beat —
unless its process is still alive, in which case it has not stopped at all. Judging by the last
beat only counts overlaps that certainly happened.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

RUN_HOST = Path(__file__).with_name("run_host.py")
RESULT = re.compile(r"^result task=(\S+) attempt=(\d+) pid=(\d+)$")


def run_host_argv(logfile: str | Path) -> list[str]:
    """The argv of a command pool that runs run_host.py with this interpreter."""
    return [sys.executable, str(RUN_HOST), str(logfile)]


@dataclass
class Run:
    task: str
    attempt: int
    pool: str
    pid: int
    daemon_pid: int
    start: float  # time.time()
    last_seen: float
    end: float | None = None  # None: killed, or still running

    @property
    def finished(self) -> bool:
        return self.end is not None

    def stop_bound(self, alive: set[int]) -> float:
        """When the run certainly was still going; inf if it still runs."""
        if self.end is not None:
            return self.end
        return math.inf if self.pid in alive else self.last_seen


def read_run_log(path: str | Path) -> list[Run]:
    """Runs in the order they started; a missing log means no runs."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    runs: list[Run] = []
    open_runs: dict[int, Run] = {}  # pid -> the run not yet ended
    for line in lines:
        kind, *fields = line.split()
        if kind == "start":
            task, attempt, pool, pid, when, daemon = fields
            run = Run(task, int(attempt), pool, int(pid), int(daemon), float(when), float(when))
            runs.append(run)
            open_runs[run.pid] = run
        elif kind in ("beat", "end"):
            run = open_runs[int(fields[-2])]
            seen = float(fields[-1])
            run.last_seen = max(run.last_seen, seen)
            if kind == "end":
                run.end = seen
                del open_runs[run.pid]
        else:
            raise ValueError(f"{path}: unexpected line {line!r}")
    return runs


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"


def alive_pids(runs: list[Run]) -> set[int]:
    return {run.pid for run in runs if not run.finished and pid_alive(run.pid)}


def by_task(runs: list[Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.task, []).append(run)
    return grouped


def overlapping_runs(runs: list[Run], alive: set[int]) -> dict[str, list[tuple[Run, Run]]]:
    """Per task, the pairs of its runs that were in progress at the same time."""
    found: dict[str, list[tuple[Run, Run]]] = {}
    for task, task_runs in by_task(runs).items():
        ordered = sorted(task_runs, key=lambda r: r.start)
        for i, first in enumerate(ordered):
            for second in ordered[i + 1 :]:
                if second.start < first.stop_bound(alive):
                    found.setdefault(task, []).append((first, second))
    return found


def max_overlap_by_pool(runs: list[Run], alive: set[int]) -> dict[str, int]:
    """Per pool, the peak number of runs certainly in progress at once."""
    events: dict[str, list[tuple[float, int]]] = {}
    for run in runs:
        pool_events = events.setdefault(run.pool, [])
        pool_events.append((run.start, 1))
        pool_events.append((run.stop_bound(alive), -1))
    peaks: dict[str, int] = {}
    for pool, pool_events in events.items():
        peak = current = 0
        for _, delta in sorted(pool_events):  # at equal times -1 sorts before +1
            current += delta
            peak = max(peak, current)
        peaks[pool] = peak
    return peaks


def result_run(result: str | None) -> tuple[str, int, int] | None:
    """(task, attempt, pid) named by a recorded result, None if it names no run."""
    match = RESULT.match(result or "")
    return (match[1], int(match[2]), int(match[3])) if match else None
