"""Histograms and counters for the per-task hot path, exposed exactly as prometheus-client's.

prometheus-client's `Histogram.observe` checks the child, then takes a lock for its sum and
another for its bucket; a task observes four histograms and two counters. Taking one lock
and one bisection per observation instead, as a child here does, saved a twelfth of the
daemon's instructions per task in a drain (scripts/pg_instructions.py). The samples it yields
at scrape time (`_bucket` with `le`, `_count`, `_sum`, `_created`; `_total`, `_created`) are
the ones prometheus-client would, so the exposition does not change
(tests/unit/test_fast_metrics.py).
The lock keeps the legacy mode's worker threads, which observe too, from losing an update.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

INF = float("inf")


class HistogramChild:
    __slots__ = ("_bounds", "_counts", "_lock", "_sum", "created")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()
        self.created = time.time()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect_left(self._bounds, value)] += 1  # `le`: a bound holds its equal
            self._sum += value

    def read(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self._counts), self._sum


class CounterChild:
    __slots__ = ("_lock", "_value", "created")

    def __init__(self) -> None:
        self._value = 0.0
        self._lock = threading.Lock()
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    def read(self) -> float:
        with self._lock:
            return self._value


Child = TypeVar("Child", HistogramChild, CounterChild)


class _Family(Collector, Generic[Child]):
    """Children by label values, made on first use; a collector of the registry."""

    kind = ""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}
        registry.register(self)

    def labels(self, *values: str) -> Child:
        child = self._children.get(values)
        if child is None:
            self._labels(values)
            child = self._children.setdefault(values, self._new_child())
        return child

    def _new_child(self) -> Child:
        raise NotImplementedError

    def _labels(self, values: tuple[str, ...]) -> dict[str, str]:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
        return dict(zip(self.labelnames, values, strict=True))


class FastHistogram(_Family[HistogramChild]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.bounds = tuple(float(b) for b in buckets if b != INF)
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        les = [floatToGoString(b) for b in (*self.bounds, INF)]  # type: ignore[no-untyped-call]
        for values, child in list(self._children.items()):
            labels = self._labels(values)
            counts, total = child.read()
            cumulative = 0.0
            for le, count in zip(les, counts, strict=True):
                cumulative += count
                metric.add_sample(f"{self.name}_bucket", {**labels, "le": le}, cumulative)
            metric.add_sample(f"{self.name}_count", labels, cumulative)
            metric.add_sample(f"{self.name}_sum", labels, total)
            metric.add_sample(f"{self.name}_created", labels, child.created)
        yield metric


class FastCounter(_Family[CounterChild]):
    kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for values, child in list(self._children.items()):
            labels = self._labels(values)
            metric.add_sample(f"{self.name}_total", labels, child.read())
            metric.add_sample(f"{self.name}_created", labels, child.created)
        yield metric
