"""The kill -9 scenario shared by tests/system/test_faults.py, test_postgres_soak.py and
scripts/soak.py.

Daemons run command pools whose host (run_host.py) logs every run; tasks are submitted in
waves while daemons are killed with SIGKILL at random moments and restarted at once. On a
PostgreSQL queue (`Plan.db`) the faults also include pg_terminate_backend of one daemon's
connections and an immediate restart of the server (a `FaultServer` does them). At the end
everything is judged from the host log and the queue:

- lost: tasks that ended in any status but `done`, or `done` without a finished run;
- concurrent duplicates: tasks two of whose runs were in progress at the same time;
- stale results: `done` tasks whose result is not the one of their last run;
- stuck: tasks not finished once the queue should have drained;
- slot violations: pools whose peak of runs in progress exceeded their slots;
- recovery: for each restart, the time until the restarted daemon started a task; for each
  termination or server restart, the time until any daemon started a task.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from tests.support.daemons import DaemonSet, command_pool, wait_until, write_config
from tests.support.runlog import (
    Run,
    alive_pids,
    max_overlap_by_pool,
    overlapping_runs,
    read_run_log,
    result_run,
    run_host_argv,
)
from ygg import api
from ygg.config import load
from ygg.errors import StoreUnavailable
from ygg.store import Store, open_store

UNFINISHED = ("waiting", "queued", "running")
KILL, TERMINATE, RESTART = "kill", "terminate", "server restart"
JUDGE_RETRY_S = 60.0  # how long the judge's own reads wait for a restarted server


@dataclass(frozen=True)
class Plan:
    tasks: int = 200
    kills: int = 5
    seconds: float = 8.0  # over which the kills (and the submission waves) are spread
    short_s: tuple[float, float] = (0.05, 0.2)
    long_every: int = 25  # every n-th task works long_s, longer than a lease
    long_s: float = 2.5
    lease_s: float = 1.0
    pools: dict[str, int] = field(default_factory=lambda: {"alpha": 3, "beta": 2})
    modes: tuple[str, ...] = ("--async",)  # one daemon per entry
    seed: int = 1
    settle_s: float = 60.0  # how long the queue may take to drain after the last kill
    db: str = ""  # a PostgreSQL URL; "" is the SQLite file queue.db in the scenario's folder
    terminations: int = 0  # pg_terminate_backend of one daemon's connections (PostgreSQL)
    server_restarts: int = 0  # pg_ctl restart -m immediate (PostgreSQL)


class FaultServer(Protocol):
    """The database server's faults, for a PostgreSQL plan (tests/support/pgfaults.py)."""

    def terminate(self, daemon_pid: int) -> int:
        """Ends every connection of the daemon `daemon_pid`; how many there were."""
        ...

    def restart(self) -> None: ...


@dataclass
class Figures:
    tasks: int
    kills: int
    lost: list[int]
    duplicates: dict[str, list[tuple[Run, Run]]]
    stale: list[int]
    stuck: list[int]
    peaks: dict[str, int]
    slots: dict[str, int]
    recovery_s: list[float | None]
    runs: int
    wall_s: float
    terminations: int = 0
    terminated_backends: int = 0
    server_restarts: int = 0
    # TERMINATE / RESTART -> per fault, the time until any daemon started a task (None:
    # nothing was left to start)
    fault_recovery_s: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def slot_violations(self) -> dict[str, int]:
        return {p: n for p, n in self.peaks.items() if n > self.slots.get(p, 0)}

    def summary(self) -> str:
        recovered = [f"{r:.2f}" if r is not None else "none" for r in self.recovery_s]
        return "\n".join(
            [
                f"{self.tasks} tasks, {self.kills} kills, {self.runs} runs in {self.wall_s:.1f} s",
                f"lost: {len(self.lost)} {self.lost[:10]}",
                f"concurrent duplicates: {len(self.duplicates)} {describe(self.duplicates)}",
                f"stale results accepted: {len(self.stale)} {self.stale[:10]}",
                f"stuck: {len(self.stuck)} {self.stuck[:10]}",
                f"slot violations: {self.slot_violations or 0} (peaks {self.peaks}, "
                f"slots {self.slots})",
                f"recovery after each kill (s, restart -> first new task start): {recovered}",
                *self.server_lines(),
            ]
        )

    def server_lines(self) -> list[str]:
        if not (self.terminations or self.server_restarts):
            return []
        lines = [
            f"terminations: {self.terminations} ({self.terminated_backends} backends), "
            f"server restarts: {self.server_restarts}"
        ]
        for fault, times in self.fault_recovery_s.items():
            shown = [f"{r:.2f}" if r is not None else "none" for r in times]
            lines.append(f"recovery after each {fault} (s, fault -> next task start): {shown}")
        return lines


def describe(duplicates: dict[str, list[tuple[Run, Run]]], limit: int = 5) -> str:
    parts = []
    for task, pairs in list(duplicates.items())[:limit]:
        first, second = pairs[0]
        parts.append(
            f"task {task}: attempt {first.attempt} (pid {first.pid}) still running "
            f"when attempt {second.attempt} started"
        )
    return "; ".join(parts)


def write_plan_config(directory: Path, plan: Plan) -> Path:
    argv = run_host_argv(directory / "runs.log")
    pools = "".join(
        command_pool(name, argv, slots=slots, kinds=[f"k-{name}"])
        for name, slots in plan.pools.items()
    )
    daemon = f"lease_seconds = {plan.lease_s}\npoll_seconds = 0.2\ndrain_seconds = 1"
    return write_config(
        directory, pools, daemon=daemon, defaults="max_attempts = 50", db=plan.db or "queue.db"
    )


def judge_store(directory: Path, plan: Plan) -> Store:
    """The scenario's own door to the queue. On PostgreSQL its connection has a name of its
    own, and every call waits out a restarting server, as a daemon would."""
    if not plan.db:
        return open_store(str(directory / "queue.db"))
    sep = "&" if "?" in plan.db else "?"
    return cast(Store, _Patient(open_store(f"{plan.db}{sep}application_name=ygg-soak-judge")))


class _Patient:
    """A store whose every call is tried again while the server is unavailable."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method

        def patiently(*args: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + JUDGE_RETRY_S
            while True:
                try:
                    return method(*args, **kwargs)
                except StoreUnavailable:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

        return patiently


def submit_wave(
    store: Store, config_path: Path, plan: Plan, first: int, count: int, rng: random.Random
) -> list[int]:
    config = load(str(config_path))
    kinds = [f"k-{name}" for name in plan.pools]
    ids = []
    for n in range(first, first + count):
        seconds = (
            plan.long_s
            if n % plan.long_every == plan.long_every - 1
            else rng.uniform(*plan.short_s)
        )
        task = api.new_task(
            config, title=f"t{n}", kind=kinds[n % len(kinds)], params={"seconds": f"{seconds:.3f}"}
        )
        ids.append(api.submit(store, task).id)
    return ids


def fault_schedule(plan: Plan) -> list[str]:
    """The faults in the order they come: kills only, or kills, terminations and server
    restarts shuffled (with a generator of their own, so kill-only plans stay as they were)."""
    faults = [KILL] * plan.kills + [TERMINATE] * plan.terminations
    faults += [RESTART] * plan.server_restarts
    if len(faults) > plan.kills:
        random.Random(plan.seed + 1).shuffle(faults)
    return faults


@dataclass
class _Faults:
    restarts: list[tuple[int, float]] = field(default_factory=list)  # (daemon pid, wall time)
    at: dict[str, list[float]] = field(default_factory=dict)  # TERMINATE/RESTART -> times
    terminated_backends: int = 0


def run_plan(
    directory: Path, plan: Plan, daemons: DaemonSet, server: FaultServer | None = None
) -> Figures:
    """Runs the scenario with `daemons` (made on write_plan_config's file) and judges it."""
    rng = random.Random(plan.seed)
    store = judge_store(directory, plan)
    log = directory / "runs.log"
    began = time.monotonic()
    faults = fault_schedule(plan)
    waves = len(faults) + 1
    sizes = [plan.tasks // waves + (1 if i < plan.tasks % waves else 0) for i in range(waves)]
    ids = submit_wave(store, daemons.config, plan, 0, sizes[0], rng)
    running = [daemons.start(mode) for mode in plan.modes]
    done = _Faults()
    for wave, fault in enumerate(faults, start=1):
        time.sleep(rng.uniform(0.5, 1.5) * plan.seconds / waves)
        victim = rng.randrange(len(running))
        settled = inflict(fault, victim, running, plan, daemons, server, store, log, done)
        ids += submit_wave(store, daemons.config, plan, len(ids), sizes[wave], rng)
        # The next fault comes once a daemon has started a task again (or visibly failed
        # to). With several daemons the others may have taken every remaining task: nothing
        # to wait for.
        wait_until(settled, plan.settle_s, 0.05)
    wait_until(lambda: not any(store.counts().get(s) for s in UNFINISHED), plan.settle_s, 0.1)
    for process in running:
        daemons.stop(process)
    runs = read_run_log(log)
    wait_until(lambda: not alive_pids(runs), 10.0, 0.1)  # orphans of killed daemons, if any
    runs = read_run_log(log)
    alive = alive_pids(runs)
    daemons.adopt(sorted(alive))
    figures = judge(store, ids, runs, alive, plan, done.restarts)
    figures.terminations = len(done.at.get(TERMINATE, []))
    figures.terminated_backends = done.terminated_backends
    figures.server_restarts = len(done.at.get(RESTART, []))
    figures.fault_recovery_s = {
        fault: [first_start_after(runs, at) for at in times] for fault, times in done.at.items()
    }
    figures.wall_s = time.monotonic() - began
    store.close()
    return figures


def inflict(
    fault: str,
    victim: int,
    running: list[Any],
    plan: Plan,
    daemons: DaemonSet,
    server: FaultServer | None,
    store: Store,
    log: Path,
    done: _Faults,
) -> Callable[[], bool]:
    """Does one fault to daemon `victim` (or to the server); returns when it has settled."""
    if fault == KILL:
        daemons.kill(running[victim])
        restarted_at = time.time()
        running[victim] = daemons.start(plan.modes[victim])
        done.restarts.append((running[victim].pid, restarted_at))
        return recovered_or_drained(store, log, running[victim].pid)
    if server is None:
        raise ValueError(f"a {fault} needs a database server (Plan.db and a FaultServer)")
    at = time.time()
    if fault == TERMINATE:
        done.terminated_backends += server.terminate(running[victim].pid)
    else:
        server.restart()
    done.at.setdefault(fault, []).append(at)
    return lambda: (
        first_start_after(read_run_log(log), at) is not None or not (store.counts().get("queued"))
    )


def first_start_after(runs: list[Run], at: float) -> float | None:
    starts = [r.start - at for r in runs if r.start > at]
    return min(starts) if starts else None


def started_by(log: Path, daemon_pid: int) -> Callable[[], bool]:
    return lambda: any(r.daemon_pid == daemon_pid for r in read_run_log(log))


def recovered_or_drained(store: Store, log: Path, daemon_pid: int) -> Callable[[], bool]:
    started = started_by(log, daemon_pid)
    return lambda: started() or not store.counts().get("queued")


def judge(
    store: Store,
    ids: list[int],
    runs: list[Run],
    alive: set[int],
    plan: Plan,
    restarts: list[tuple[int, float]],
) -> Figures:
    last_run: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: r.start):
        last_run[run.task] = run
    lost, stale, stuck = [], [], []
    for task_id in ids:
        task = store.get(task_id)
        last = last_run.get(str(task_id))
        if task.status in UNFINISHED:
            stuck.append(task_id)
        elif task.status != "done" or last is None:
            lost.append(task_id)
        elif result_run(task.result) != (str(task_id), last.attempt, last.pid) or not last.finished:
            stale.append(task_id)
    recovery: list[float | None] = []
    for pid, restarted_at in restarts:
        starts = [r.start for r in runs if r.daemon_pid == pid]
        recovery.append(min(starts) - restarted_at if starts else None)
    return Figures(
        tasks=len(ids),
        kills=len(restarts),
        lost=lost,
        duplicates=overlapping_runs(runs, alive),
        stale=stale,
        stuck=stuck,
        peaks=max_overlap_by_pool(runs, alive),
        slots=dict(plan.pools),
        recovery_s=recovery,
        runs=len(runs),
        wall_s=0.0,
    )
