"""Prometheus metrics in a registry of their own, so several instances (and tests) never clash.

Event metrics (claims, attempts, queue waits, lease renewals, reaps) are updated on the
dispatcher's hot path: each method is one dict lookup and one observation. State metrics (task
counts, pool load, breakers, the process) are read only when scraped, from a Snapshot and psutil.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Final

import psutil
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ygg import __version__
from ygg.ops.fast_metrics import CounterChild, FastCounter, FastHistogram, HistogramChild
from ygg.ops.progress import Progress
from ygg.ops.snapshot import BREAKER_STATES, Snapshot
from ygg.store.model import Outcome

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
# Claims are one SQLite statement: sub-millisecond normally, seconds when the file is locked.
CLAIM_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0)  # fmt: skip
# LLM attempts run from milliseconds (sim, cache hits) to the 10-minute default timeout and past.
ATTEMPT_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                     600.0, 1800.0)  # fmt: skip
# A small model on a GPU answers its first token in tens of milliseconds; a long prompt on a
# CPU, or a request waiting inside a busy host, takes seconds to minutes.
FIRST_TOKEN_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                         120.0, 300.0)  # fmt: skip
# Output tokens per second of one answer: single digits on a CPU, hundreds on a fast GPU.
TOKENS_PER_S_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 200.0,
                        300.0, 500.0, 1000.0)  # fmt: skip
QUEUE_WAIT_BUCKETS_S = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0,
                        3600.0, 14400.0, 86400.0)  # fmt: skip

# Outcomes `attempt_finished` is meant to be called with (free text is accepted; keep it small).
OUTCOMES = ("done", "retry", "failed", "stale", "cancelled", "interrupted", "lease_lost")


class Metrics:
    def __init__(
        self,
        progress: Progress | None = None,
        store_down_s: Callable[[], float] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._claim_s = FastHistogram(
            "ygg_claim_duration_seconds",
            "Time one claim statement took, per pool (including waits for the store thread).",
            ["pool"],
            buckets=CLAIM_BUCKETS_S,
            registry=r,
        )
        self._claimed = FastCounter(
            "ygg_tasks_claimed", "Tasks claimed by this daemon, per pool.", ["pool"], registry=r
        )
        self._attempt_s = FastHistogram(
            "ygg_attempt_duration_seconds",
            f"Duration of finished attempts by pool, kind and outcome ({', '.join(OUTCOMES)}).",
            ["pool", "kind", "outcome"],
            buckets=ATTEMPT_BUCKETS_S,
            registry=r,
        )
        self._wait_s = FastHistogram(
            "ygg_queue_wait_seconds",
            "Time a task waited in the queue before this daemon claimed it.",
            ["pool", "kind"],
            buckets=QUEUE_WAIT_BUCKETS_S,
            registry=r,
        )
        self._usage = _Usage(r)
        self._renewed = Counter("ygg_leases_renewed", "Task leases renewed.", registry=r)
        self._reaped = Counter(
            "ygg_tasks_reaped", "Tasks recovered from dispatchers whose lease ran out.", registry=r
        )
        self._state = _StateCollector(progress, store_down_s)
        r.register(self._state)
        # The children, by their labels: one dict lookup per observation, where the families'
        # labels() would be a call more each (2 % of the daemon's instructions per task).
        self._claim_children: dict[str, tuple[HistogramChild, CounterChild]] = {}
        self._attempt_children: dict[tuple[str, str, str], HistogramChild] = {}
        self._wait_children: dict[tuple[str, str], HistogramChild] = {}

    # --- the hot path --------------------------------------------------------------------------
    def claim_observed(self, pool: str, seconds: float, claimed: int) -> None:
        children = self._claim_children.get(pool)
        if children is None:
            children = self._claim_s.labels(pool), self._claimed.labels(pool)
            self._claim_children[pool] = children
        children[0].observe(seconds)
        if claimed:
            children[1].inc(claimed)

    def attempt_finished(self, pool: str, kind: str, outcome: str, duration_s: float) -> None:
        key = (pool, kind, outcome)
        child = self._attempt_children.get(key)
        if child is None:
            child = self._attempt_children[key] = self._attempt_s.labels(*key)
        child.observe(duration_s)

    def queue_wait_observed(self, pool: str, kind: str, seconds: float) -> None:
        key = (pool, kind)
        child = self._wait_children.get(key)
        if child is None:
            child = self._wait_children[key] = self._wait_s.labels(*key)
        child.observe(max(seconds, 0.0))  # clocks of two machines may disagree a little

    def usage_observed(self, pool: str, outcome: Outcome) -> None:
        """An answer's tokens and speed, as far as its host told them."""
        self._usage.observe(pool, outcome)

    def leases_renewed(self, n: int) -> None:
        if n:
            self._renewed.inc(n)

    def tasks_reaped(self, n: int) -> None:
        if n:
            self._reaped.inc(n)

    # --- scraping ------------------------------------------------------------------------------
    def render(self, snapshot: Snapshot | None) -> bytes:
        """The text exposition, with the state gauges read from `snapshot` (None: left out).

        The snapshot is passed in rather than fetched by the collector because making one reads
        the database through the store thread, which must be awaited, and collectors are sync.
        """
        self._state.current = snapshot
        try:
            return generate_latest(self.registry)
        finally:
            self._state.current = None


class _Usage:
    """Tokens in and out, time to the first token and tokens per second, per pool."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._first_token_s = FastHistogram(
            "ygg_first_token_seconds",
            "Time from sending a request to its first streamed token, per pool.",
            ["pool"],
            buckets=FIRST_TOKEN_BUCKETS_S,
            registry=registry,
        )
        self._speed = FastHistogram(
            "ygg_tokens_per_second",
            "Output tokens per second of generation (first token to last) of each answer.",
            ["pool"],
            buckets=TOKENS_PER_S_BUCKETS,
            registry=registry,
        )
        self._tokens = FastCounter(
            "ygg_tokens",
            "Tokens the hosts counted, per pool: direction in (prompt) or out (generated).",
            ["pool", "direction"],
            registry=registry,
        )
        self._children: dict[
            str, tuple[HistogramChild, HistogramChild, CounterChild, CounterChild]
        ] = {}

    def observe(self, pool: str, outcome: Outcome) -> None:
        children = self._children.get(pool)
        if children is None:
            children = self._children[pool] = (
                self._first_token_s.labels(pool),
                self._speed.labels(pool),
                self._tokens.labels(pool, "in"),
                self._tokens.labels(pool, "out"),
            )
        first_token, speed, tokens_in, tokens_out = children
        if outcome.first_token_s is not None and outcome.first_token_s >= 0:
            first_token.observe(outcome.first_token_s)
        if outcome.tokens_out and outcome.generation_s and outcome.generation_s > 0:
            speed.observe(outcome.tokens_out / outcome.generation_s)
        if outcome.tokens_in and outcome.tokens_in > 0:
            tokens_in.inc(outcome.tokens_in)
        if outcome.tokens_out and outcome.tokens_out > 0:
            tokens_out.inc(outcome.tokens_out)


class _StateCollector:
    """Gauges computed at scrape time only: from the snapshot being rendered, and psutil."""

    def __init__(
        self, progress: Progress | None, store_down_s: Callable[[], float] | None = None
    ) -> None:
        self.current: Snapshot | None = None
        self._progress = progress
        self._store_down_s = store_down_s
        self._process = psutil.Process(os.getpid())

    def collect(self) -> Iterable[Metric]:
        if self.current is not None:
            yield from _snapshot_metrics(self.current)
            yield from _host_metrics(self.current)
        if self._progress is not None:
            yield from _progress_metrics(self._progress)
        if self._store_down_s is not None:
            yield GaugeMetricFamily(
                "ygg_store_unavailable_seconds",
                "How long the store (say, a PostgreSQL server) has been out of reach; 0 while "
                "it answers.",
                value=self._store_down_s(),
            )
        yield from self._process_metrics()

    def _process_metrics(self) -> Iterable[Metric]:
        try:
            with self._process.oneshot():
                rss_bytes = self._process.memory_info().rss
                times = self._process.cpu_times()
                fds = self._process.num_fds()
                started_s = self._process.create_time()
        except psutil.Error:
            return  # a scrape must not fail because /proc could not be read
        yield GaugeMetricFamily(
            "ygg_process_resident_memory_bytes", "Resident set size.", value=rss_bytes
        )
        yield CounterMetricFamily(
            "ygg_process_cpu_seconds", "User and system CPU time.", value=times.user + times.system
        )
        yield GaugeMetricFamily("ygg_process_open_fds", "Open file descriptors.", value=fds)
        yield GaugeMetricFamily(
            "ygg_process_start_time_seconds", "Start time, seconds since the epoch.", started_s
        )


def _snapshot_metrics(snap: Snapshot) -> Iterable[Metric]:
    info = GaugeMetricFamily("ygg_daemon_info", "Always 1; labels describe the daemon.",
                             labels=["mode", "version"])  # fmt: skip
    info.add_metric([snap["daemon"]["mode"], __version__], 1)
    yield info
    tasks = GaugeMetricFamily("ygg_tasks", "Tasks in the queue by status.", labels=["status"])
    for status, n in snap["tasks"].items():
        tasks.add_metric([status], n)
    yield tasks
    slots = GaugeMetricFamily("ygg_pool_slots", "Configured slots.", labels=["pool"])
    limit = GaugeMetricFamily(
        "ygg_pool_limit",
        "Tasks the pool may run at once now, across every daemon (its stored limit).",
        labels=["pool"],
    )
    running = GaugeMetricFamily(
        "ygg_pool_running", "Tasks running in the pool, across all daemons.", labels=["pool"]
    )
    queued = GaugeMetricFamily(
        "ygg_pool_queued", "Queued tasks of the kinds the pool serves.", labels=["pool"]
    )
    breaker = GaugeMetricFamily(
        "ygg_pool_breaker_state",
        "Circuit breaker: 0 closed, 1 half-open, 2 open, -1 unknown.",
        labels=["pool"],
    )
    for pool in snap["pools"]:
        name = [pool["name"]]
        slots.add_metric(name, pool["slots"])
        limit.add_metric(name, pool["limit"])
        running.add_metric(name, pool["running"])
        queued.add_metric(name, pool["queued"])
        breaker.add_metric(name, BREAKER_STATES.get(pool["breaker"], -1))
    yield from (slots, limit, running, queued, breaker)


def _progress_metrics(progress: Progress) -> Iterable[Metric]:
    """How close the daemon is to counting as stuck. Read from memory, not the store, so they
    are served even while the store thread is wedged (the reads use a connection of their own,
    and a snapshot that fails leaves only the snapshot's gauges out)."""
    ages = GaugeMetricFamily(
        "ygg_progress_age_seconds",
        "Seconds since each periodic loop (reaper, lease_keeper) last went round through the "
        "store.",
        labels=["loop"],
    )
    for name, age_s in progress.ages().items():
        ages.add_metric([name], age_s)
    yield ages
    yield GaugeMetricFamily(
        "ygg_progress_window_seconds",
        "Age past which /healthz answers 503 and the systemd watchdog pings stop.",
        value=progress.max_age_s,
    )


def _host_metrics(snap: Snapshot) -> Iterable[Metric]:
    """What each pool's host says of its own load (ygg/backends/telemetry.py); a pool whose
    host says nothing has no sample, and a host that does not report a figure lacks that one."""
    running = GaugeMetricFamily(
        "ygg_host_requests_running", "Requests the host says it is working on.", labels=["pool"]
    )
    waiting = GaugeMetricFamily(
        "ygg_host_requests_waiting",
        "Requests the host says are queued inside it (vLLM waiting, llama.cpp deferred).",
        labels=["pool"],
    )
    kv_cache = GaugeMetricFamily(
        "ygg_host_kv_cache_usage", "Fraction of the host's KV cache in use (0-1).", labels=["pool"]
    )
    vram = GaugeMetricFamily(
        "ygg_host_model_vram_ratio",
        "Fraction of each loaded model in GPU memory (Ollama); below 1 it runs partly on the CPU.",
        labels=["pool", "model"],
    )
    saturated = GaugeMetricFamily(
        "ygg_host_saturated",
        "1 while the host itself says it is saturated (requests waiting, KV cache at 80% or "
        "more, a model spilling to the CPU, every slot busy), else 0.",
        labels=["pool"],
    )
    for pool in snap["pools"]:
        data = pool.get("telemetry")
        if not data:
            continue
        name = pool["name"]
        for family, key in (
            (running, "running"),
            (waiting, "waiting"),
            (kv_cache, "kv_cache_usage"),
        ):
            if data.get(key) is not None:
                family.add_metric([name], data[key])
        for model in data.get("models") or []:
            vram.add_metric([name, model["name"]], model["vram_ratio"])
        saturated.add_metric([name], 1 if data.get("saturated") else 0)
    yield from (running, waiting, kv_cache, vram, saturated)
