"""`ygg bench adaptive`: adaptive slots against every fixed slot count, on simulated hosts.

Each run is a fresh directory with a real configuration and SQLite queue holding more tasks
than any setting can finish, and the real async dispatcher in this process for a fixed stretch
of simulated time; the sim backend's host model (ygg/backends/host_model.py) answers. A run
counts the tasks done in that stretch and their latencies from the queue, and (adaptive) samples
the pool's limit as it moves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ygg import api
from ygg.backends.host_model import PREFILL_TOKENS
from ygg.config import Config, load
from ygg.store import open_store
from ygg.store.model import US, NewTask, Task, now_us

CEILING = 16  # the adaptive pool's slots; the fixed runs try 1 .. CEILING
TOKENS_PER_S = 50  # a simulated host's tokens per simulated second, at full speed
TOKENS = (16, 116)  # each answer's length, uniform: 0.5 to 2.5 simulated seconds of work
SAMPLE_S = 0.5  # how often the adaptive limit is sampled, simulated seconds
KIND = "gen"
POOL = "host"


@dataclass(frozen=True)
class HostShape:
    name: str
    knee: int  # 0: none
    capacity: int = 0  # 0: none
    overload: str = "slow"

    @property
    def summary(self) -> str:
        parts = [f"knee at {self.knee}" if self.knee else "no knee"]
        if self.capacity:
            parts.append(f"{self.overload} past {self.capacity}")
        return ", ".join(parts)

    @property
    def best_concurrency(self) -> int:
        return min(n for n in (self.knee, self.capacity, CEILING) if n)


MODELS = (
    HostShape("knee-2", 2),
    HostShape("knee-4", 4),
    HostShape("knee-8", 8),
    HostShape("503-past-6", 0, capacity=6, overload="503"),
)


@dataclass(frozen=True)
class SettingRun:
    """One setting on one host model, in simulated seconds."""

    setting: str  # "adaptive" or the fixed slots
    done: int
    duration_s: float
    latencies_s: tuple[float, ...]  # of every task done, start of its last attempt to finish
    limits: tuple[tuple[float, int], ...] = ()  # (time, limit) samples of an adaptive run
    tokens_out: int = 0  # of the tasks done

    @property
    def throughput(self) -> float:
        return self.done / self.duration_s

    @property
    def p95_s(self) -> float:
        return percentile(self.latencies_s, 0.95)


def percentile(values: tuple[float, ...] | list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def converged_at_s(limits: tuple[tuple[float, int], ...]) -> float | None:
    """When the limit came within one of where it ends (the most common value of its last
    third) and stayed there; None if it never settled."""
    if not limits:
        return None
    tail = [limit for _, limit in limits[len(limits) * 2 // 3 :]]
    final = max(set(tail), key=tail.count)
    settled = None
    for at_s, limit in limits:
        if abs(limit - final) > 1:
            settled = None
        elif settled is None:
            settled = at_s
    return settled


def pool_config(backend: str, setting: int | None, ceiling: int, rest: str) -> str:
    """A bench run's configuration: one pool of `backend` serving KIND, adaptive up to
    `ceiling` (setting None) or with `setting` fixed slots; `rest`: the pool's other lines."""
    slots = ceiling if setting is None else setting
    adaptive = "adaptive = true\nmin_slots = 1\n" if setting is None else ""
    return f"""\
[daemon]
db = "queue.db"
poll_seconds = 0.05
drain_seconds = 0
log_format = "json"
status_listen = ""

[pools.{POOL}]
backend = "{backend}"
kinds = ["{KIND}"]
slots = {slots}
{adaptive}{rest}"""


def config_text(model: HostShape, setting: int | None, scale: float, ceiling: int = CEILING) -> str:
    """One sim pool on the host model; retries after one simulated second, never given up,
    and a breaker that cools down in two."""
    return pool_config(
        "sim",
        setting,
        ceiling,
        f"""\
sim_knee = {model.knee}
sim_capacity = {model.capacity}
sim_overload = "{model.overload}"
max_attempts = 1000
backoff_seconds = {scale:g}
backoff_max_seconds = {4 * scale:g}
breaker_cooldown_seconds = {2 * scale:g}
""",
    )


def work_s(tokens: int) -> float:
    """Simulated seconds at full speed for an answer of `tokens` (the prompt read first)."""
    return (tokens - 1 + PREFILL_TOKENS) / TOKENS_PER_S


def workload(model: HostShape, duration_s: float, seed: int = 13) -> list[int]:
    """More answers than the best setting finishes in `duration_s`: each one's tokens."""
    mean_s = work_s(sum(TOKENS) // 2)
    count = math.ceil(model.best_concurrency * duration_s / mean_s * 1.3) + 20
    rng = random.Random(seed)
    return [rng.randint(*TOKENS) for _ in range(count)]


def sim_tasks(work: list[int], scale: float) -> Callable[[Config], list[NewTask]]:
    """The answers of `work`, each as a sim task of its tokens and scaled seconds."""

    def tasks(config: Config) -> list[NewTask]:
        return [
            api.new_task(
                config,
                title=f"answer {i + 1}",
                kind=KIND,
                params={"seconds": repr(work_s(tokens) * scale), "tokens": str(tokens)},
            )
            for i, tokens in enumerate(work)
        ]

    return tasks


async def _dispatch(config: Config, run_s: float, sample_s: float) -> list[tuple[float, int]]:
    """Runs the dispatcher until `run_s` real seconds after its first claim; samples the
    pool's limit every `sample_s`, as (wall-clock seconds, limit)."""
    from ygg.dispatch.dispatcher import Dispatcher

    dispatcher = Dispatcher(config)
    running = asyncio.create_task(dispatcher.run())
    samples: list[tuple[float, int]] = []
    first: float | None = None
    deadline = time.monotonic() + run_s + 30.0  # start-up cannot take longer than this
    try:
        while time.monotonic() < deadline and not running.done():
            runner = dispatcher.runners.get(POOL)
            if runner is not None:
                samples.append((time.time(), runner.limit))
                if first is None and runner.attempts:
                    first = time.monotonic()
                    deadline = first + run_s
            await asyncio.sleep(sample_s)
    finally:
        dispatcher.request_stop()
        await running
    return samples


def read_back(config: Config, scale: float, duration_s: float) -> tuple[list[Task], float]:
    """The tasks done within `duration_s` of the first start, and that start (wall seconds)."""
    store = open_store(config.daemon.db, synchronous="normal")
    try:
        every = store.list_tasks(limit=1_000_000)
    finally:
        store.close()
    origin = min((t.started_us for t in every if t.started_us), default=0)
    end = origin + duration_s * scale * US
    done = [t for t in every if t.status == "done" and (t.finished_us or 0) <= end]
    return done, origin / US


def run_once(
    label: str,
    config_text: str,
    tasks: Callable[[Config], list[NewTask]],
    scale: float,
    duration_s: float,
) -> SettingRun:
    """One run in a fresh directory: the configuration, the tasks queued, the dispatcher for
    `duration_s` simulated seconds after its first claim; the limit sampled as it goes."""
    from ygg.logs import configure

    configure("json", level=logging.CRITICAL)  # the dispatcher's events stay off the report
    with tempfile.TemporaryDirectory(prefix="ygg-bench-adaptive-") as tmp:
        path = Path(tmp) / "ygg.toml"
        path.write_text(config_text, encoding="utf-8")
        config = load(str(path))
        store = open_store(config.daemon.db, synchronous="normal")
        try:
            store.enqueue_many(tasks(config), now_us())
        finally:
            store.close()
        samples = asyncio.run(_dispatch(config, duration_s * scale + 0.05, SAMPLE_S * scale))
        done, origin_s = read_back(config, scale, duration_s)
    limits = tuple(
        (round((at - origin_s) / scale, 2), limit)
        for at, limit in samples
        if origin_s <= at <= origin_s + duration_s * scale
    )
    return SettingRun(
        label,
        len(done),
        duration_s,
        tuple(((t.finished_us or 0) - (t.started_us or 0)) / (US * scale) for t in done),
        limits if label == "adaptive" else (),
        sum(t.tokens_out or 0 for t in done),
    )


@dataclass(frozen=True)
class ModelResult:
    model: HostShape
    adaptive: SettingRun
    fixed: tuple[SettingRun, ...]


def run_model(
    model: HostShape,
    scale: float,
    fixed_s: float,
    adaptive_s: float,
    ceiling: int = CEILING,
    progress: Callable[[str], None] | None = None,
) -> ModelResult:
    """Every fixed setting for `fixed_s`, then adaptive slots for `adaptive_s` (its
    convergence counted), on the same list of answers."""
    work = workload(model, max(fixed_s, adaptive_s))
    tasks = sim_tasks(work, scale)
    fixed = []
    for slots in range(1, ceiling + 1):
        text = config_text(model, slots, scale)
        fixed.append(run_once(str(slots), text, tasks, scale, fixed_s))
    text = config_text(model, None, scale, ceiling)
    adaptive = run_once("adaptive", text, tasks, scale, adaptive_s)
    if progress:
        progress(
            f"{model.name}: adaptive {adaptive.throughput:.2f} tasks/s, "
            f"limit ends at {adaptive.limits[-1][1] if adaptive.limits else '?'}"
        )
    return ModelResult(model, adaptive, tuple(fixed))
