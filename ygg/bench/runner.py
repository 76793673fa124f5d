"""Runs one scenario in one mode: a fresh directory, a real configuration and SQLite queue, the
tasks submitted first, then the real dispatcher in this process until the queue is idle."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ygg import api
from ygg.bench.scenarios import Scenario
from ygg.config import Config, load
from ygg.config.examples import example_config
from ygg.errors import YggError
from ygg.store import open_store
from ygg.store.model import US, now_us

MODES = ("legacy", "async")
POLL_SECONDS = 0.05  # the legacy workers poll; keep the idle check and the polls short
BENCH_DAEMON = f"""\
# Written by `ygg bench`: short polls, so the legacy mode and the idle check react quickly.
[daemon]
poll_seconds = {POLL_SECONDS}
drain_seconds = 1
log_format = "json"
status_listen = ""  # no status endpoint for a benchmark run
"""


class BenchFailed(YggError):
    """A benchmark run did not complete."""


@dataclass(frozen=True)
class PoolShape:
    name: str
    slots: int
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class Span:
    """One task as the queue recorded it, in simulated seconds since the run's first start."""

    task_id: int
    kind: str
    pool: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Run:
    scenario: Scenario
    mode: str  # legacy | async
    scale: float  # real seconds per simulated second
    pools: tuple[PoolShape, ...]
    spans: tuple[Span, ...]  # the tasks that finished done
    statuses: dict[str, int]  # every task's final status, counted
    wall_s: float  # real seconds for the dispatcher run, start-up and shut-down included

    @property
    def makespan_s(self) -> float:
        """Simulated seconds from the first start to the last finish."""
        return max((s.end_s for s in self.spans), default=0.0)

    def mode_slots(self, pool: PoolShape) -> int:
        """The slots this mode uses in `pool`: legacy runs one task per pool at a time."""
        return 1 if self.mode == "legacy" else pool.slots


def prepare(directory: Path) -> Config:
    """The demo configuration (`ygg init --demo`) plus a drop-in with short polls."""
    path = directory / "ygg.toml"
    path.write_text(example_config(demo=True), encoding="utf-8")
    (directory / "ygg.d").mkdir()
    (directory / "ygg.d" / "10-bench.toml").write_text(BENCH_DAEMON, encoding="utf-8")
    return load(str(path))


def submit_all(config: Config, scenario: Scenario, scale: float) -> None:
    """Enqueues every task of the scenario in one transaction; no dispatcher is running yet."""
    tasks = [
        api.new_task(
            config,
            title=job.title,
            kind=job.kind,
            priority=job.priority,
            params={"seconds": repr(job.seconds * scale)},
        )
        for job in scenario.jobs
    ]
    store = open_store(config.daemon.db, synchronous="normal")
    try:
        store.enqueue_many(tasks, now_us())
    finally:
        store.close()


def dispatch(config: Config, mode: str, limit_s: float) -> bool:
    """Runs the dispatcher of `mode` in this process until the queue is idle, or stops it
    after `limit_s`; says whether it finished in time."""
    if mode == "async":
        return _dispatch_async(config, limit_s)
    if mode == "legacy":
        return _dispatch_legacy(config, limit_s)
    raise ValueError(f"unknown mode {mode!r}")


def _dispatch_async(config: Config, limit_s: float) -> bool:
    from ygg.dispatch.dispatcher import Dispatcher

    async def main() -> BaseException | None:
        dispatcher = Dispatcher(config, until_idle=True)
        async with asyncio.timeout(limit_s):
            await dispatcher.run()
        return dispatcher.crashed

    try:
        import uvloop  # imported here: the CLI loads this module for every command

        crashed = uvloop.run(main())
    except TimeoutError:
        return False
    if crashed is not None:
        raise BenchFailed(f"The async dispatcher stopped after an internal error: {crashed!r}.")
    return True


def _dispatch_legacy(config: Config, limit_s: float) -> bool:
    from ygg.dispatch.legacy import LegacyDispatcher

    legacy = LegacyDispatcher(config, until_idle=True)
    late = threading.Event()

    def stop() -> None:
        late.set()
        legacy.request_stop()

    timer = threading.Timer(limit_s, stop)
    timer.daemon = True
    timer.start()
    try:
        legacy.run()
    finally:
        timer.cancel()
    return not late.is_set()


def time_limit_s(scenario: Scenario, scale: float) -> float:
    """Generous: every task run one after another, twice over, plus 50 ms each and 15 s."""
    serial_s = sum(job.seconds for job in scenario.jobs) * scale
    return 2 * serial_s + 0.05 * len(scenario.jobs) + 15


def read_back(config: Config, scale: float, count: int) -> tuple[tuple[Span, ...], dict[str, int]]:
    """The recorded start and finish of every task that is done, and the final statuses."""
    store = open_store(config.daemon.db, synchronous="normal")
    try:
        tasks = store.list_tasks(limit=count)
    finally:
        store.close()
    statuses: dict[str, int] = {}
    for task in tasks:
        statuses[task.status] = statuses.get(task.status, 0) + 1
    done = [t for t in tasks if t.status == "done" and t.started_us and t.finished_us]
    first = min((t.started_us or 0 for t in done), default=0)
    to_sim = 1 / (US * scale)
    spans = tuple(
        Span(
            task_id=t.id,
            kind=t.kind,
            pool=t.pool or "?",
            start_s=((t.started_us or 0) - first) * to_sim,
            end_s=((t.finished_us or 0) - first) * to_sim,
        )
        for t in sorted(done, key=lambda t: t.id)
    )
    return spans, statuses


def run_scenario(scenario: Scenario, mode: str, scale: float) -> Run:
    """Runs `scenario` under the `mode` dispatcher in a fresh temporary directory."""
    from ygg.logs import configure

    configure("json", level=logging.WARNING)  # the dispatchers' events stay off the report
    limit_s = time_limit_s(scenario, scale)
    with tempfile.TemporaryDirectory(prefix=f"ygg-bench-{scenario.name}-{mode}-") as tmp:
        config = prepare(Path(tmp))
        submit_all(config, scenario, scale)
        started = time.monotonic()
        in_time = dispatch(config, mode, limit_s)
        wall_s = time.monotonic() - started
        spans, statuses = read_back(config, scale, len(scenario.jobs))
    pools = tuple(PoolShape(p.name, p.slots, p.kinds) for p in config.pools.values())
    if len(spans) != len(scenario.jobs) or not in_time:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        late = "" if in_time else f", stopped after {limit_s:.0f} s"
        raise BenchFailed(
            f"{scenario.name} ({mode}): {len(spans)} of {len(scenario.jobs)} tasks finished "
            f"done ({counts}{late})."
        )
    return Run(scenario, mode, scale, pools, spans, statuses, wall_s)
