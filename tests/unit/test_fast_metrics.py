"""The hot path's histograms and counters expose what prometheus-client's would."""

from __future__ import annotations

import re
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ygg.ops.fast_metrics import FastCounter, FastHistogram

BUCKETS = (0.01, 0.5, 1.0, 2.5, 1e7)
VALUES = (0.0, 0.01, 0.2, 0.5, 0.75, 1.0, 3.0, 1e7, 5e7, 0.005)


def exposition(registry: CollectorRegistry) -> str:
    """The text format, with the creation times (clock readings) blanked."""
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


def test_a_histogram_is_exposed_as_prometheus_clients_own() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("x_seconds", "Help.", ["pool", "kind"], buckets=BUCKETS, registry=theirs)
    fast = FastHistogram("x_seconds", "Help.", ["pool", "kind"], BUCKETS, registry=ours)
    for i, value in enumerate(VALUES):
        labels = ("p", "k" if i % 3 else "other")
        reference.labels(*labels).observe(value)
        fast.labels(*labels).observe(value)
    assert exposition(ours) == exposition(theirs)
    assert 'x_seconds_bucket{kind="k",le="1e+07",pool="p"}' in exposition(ours)


def test_a_counter_is_exposed_as_prometheus_clients_own() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Counter("x_tokens", "Help.", ["pool", "direction"], registry=theirs)
    fast = FastCounter("x_tokens", "Help.", ["pool", "direction"], registry=ours)
    for labels, amount in ((("p", "in"), 3), (("p", "out"), 7), (("p", "in"), 2.5)):
        reference.labels(*labels).inc(amount)
        fast.labels(*labels).inc(amount)
    assert exposition(ours) == exposition(theirs)


def test_observations_from_many_threads_are_all_counted() -> None:
    fast = FastHistogram("x_seconds", "Help.", ["pool"], BUCKETS, registry=CollectorRegistry())
    child = fast.labels("p")

    def observe() -> None:
        for _ in range(20_000):
            child.observe(0.75)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts, total = child.read()
    assert counts[BUCKETS.index(1.0)] == 80_000 and sum(counts) == 80_000
    assert total == pytest.approx(60_000.0)


def test_wrong_labels_are_refused() -> None:
    fast = FastHistogram("x_seconds", "Help.", ["pool"], BUCKETS, registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        fast.labels("p", "extra")
