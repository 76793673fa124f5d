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
from ygg.store.model import US, now_us

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


def config_text(model: HostShape, setting: int | None, scale: float, ceiling: int = CEILING) -> str:
    """The run's configuration: one sim pool on the host model; retries after one simulated
    second, never given up, and a breaker that cools down in two."""
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
backend = "sim"
kinds = ["{KIND}"]
slots = {slots}
{adaptive}sim_knee = {model.knee}
sim_capacity = {model.capacity}
sim_overload = "{model.overload}"
max_attempts = 1000
backoff_seconds = {scale:g}
backoff_max_seconds = {4 * scale:g}
breaker_cooldown_seconds = {2 * scale:g}
"""


def work_s(tokens: int) -> float:
    """Simulated seconds at full speed for an answer of `tokens` (the prompt read first)."""
    return (tokens - 1 + PREFILL_TOKENS) / TOKENS_PER_S


def workload(model: HostShape, duration_s: float, seed: int = 13) -> list[int]:
    """More answers than the best setting finishes in `duration_s`: each one's tokens."""
    mean_s = work_s(sum(TOKENS) // 2)
    count = math.ceil(model.best_concurrency * duration_s / mean_s * 1.3) + 20
    rng = random.Random(seed)
    return [rng.randint(*TOKENS) for _ in range(count)]


def submit(config: Config, work: list[int], scale: float) -> None:
    tasks = [
        api.new_task(
            config,
            title=f"answer {i + 1}",
            kind=KIND,
            params={"seconds": repr(work_s(tokens) * scale), "tokens": str(tokens)},
        )
        for i, tokens in enumerate(work)
    ]
    store = open_store(config.daemon.db, synchronous="normal")
    try:
        store.enqueue_many(tasks, now_us())
    finally:
        store.close()


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


def read_back(config: Config, scale: float, duration_s: float) -> tuple[int, list[float], float]:
    """Tasks done within `duration_s` of the first start, their latencies, and that start."""
    store = open_store(config.daemon.db, synchronous="normal")
    try:
        done = store.list_tasks(status="done", limit=1_000_000)
        first = store.list_tasks(limit=1_000_000)
    finally:
        store.close()
    starts = [t.started_us for t in first if t.started_us]
    origin = min(starts, default=0)
    end = origin + duration_s * scale * US
    spans = [(t.started_us or 0, t.finished_us or 0) for t in done]
    latencies = [(f - s) / (US * scale) for s, f in spans if f <= end]
    return len(latencies), latencies, origin / US


def run_setting(
    model: HostShape,
    setting: int | None,
    scale: float,
    duration_s: float,
    work: list[int],
    ceiling: int = CEILING,
) -> SettingRun:
    """One run: `setting` fixed slots, or None for adaptive slots up to `ceiling`."""
    from ygg.logs import configure

    configure("json", level=logging.CRITICAL)  # the dispatcher's events stay off the report
    with tempfile.TemporaryDirectory(prefix=f"ygg-bench-adaptive-{model.name}-") as tmp:
        path = Path(tmp) / "ygg.toml"
        path.write_text(config_text(model, setting, scale, ceiling), encoding="utf-8")
        config = load(str(path))
        submit(config, work, scale)
        # A little longer than the stretch measured: start-up comes first.
        samples = asyncio.run(_dispatch(config, duration_s * scale + 0.05, SAMPLE_S * scale))
        done, latencies, origin_s = read_back(config, scale, duration_s)
    limits = tuple(
        (round((at - origin_s) / scale, 2), limit)
        for at, limit in samples
        if origin_s <= at <= origin_s + duration_s * scale
    )
    label = "adaptive" if setting is None else str(setting)
    return SettingRun(label, done, duration_s, tuple(latencies), limits if setting is None else ())


@dataclass(frozen=True)
class ModelResult:
    model: HostShape
    adaptive: SettingRun
    fixed: tuple[SettingRun, ...]


def run_model(
    model: HostShape,
    scale: float,
    duration_s: float,
    ceiling: int = CEILING,
    progress: Callable[[str], None] | None = None,
) -> ModelResult:
    work = workload(model, duration_s)
    fixed = []
    for slots in range(1, ceiling + 1):
        fixed.append(run_setting(model, slots, scale, duration_s, work))
    adaptive = run_setting(model, None, scale, duration_s, work, ceiling)
    if progress:
        progress(
            f"{model.name}: adaptive {adaptive.throughput:.2f} tasks/s, "
            f"limit ends at {adaptive.limits[-1][1] if adaptive.limits else '?'}"
        )
    return ModelResult(model, adaptive, tuple(fixed))
