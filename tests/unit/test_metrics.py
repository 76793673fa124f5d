"""Metrics: what the registry exports, read back through the Prometheus text parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ygg.ops.metrics import Metrics
from ygg.ops.progress import Progress
from ygg.ops.snapshot import PoolInfo, Snapshot, build_snapshot, daemon_info
from ygg.store.model import Outcome


def snapshot() -> Snapshot:
    return build_snapshot(
        daemon=daemon_info(4242, "async", 1_700_000_000_000_000, "/etc/ygg/ygg.toml", "/q.db"),
        pools=[
            PoolInfo("skadi", "skadi", "ollama", 2, ("code",), "closed"),
            PoolInfo("fenrir", "fenrir", "ollama", 3, ("chat",), "open", "connection refused"),
            PoolInfo("surtr", "surtr", "sim", 1, ("batch",), "half-open"),
            PoolInfo("odd", "odd", "sim", 1, (), "unknown"),
        ],
        load={"skadi": (2, 5), "fenrir": (0, 7)},
        counts={"queued": 12, "running": 2, "done": 40},
        running=[],
    )


def samples(metrics: Metrics, snap: Snapshot | None = None) -> list[Sample]:
    text = metrics.render(snap).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in found if s.name == name and s.labels == labels]
    assert len(matches) == 1, f"{name} {labels}: {len(matches)} samples"
    return matches[0]


def test_claims_are_timed_and_counted_per_pool() -> None:
    metrics = Metrics()
    metrics.claim_observed("skadi", 0.0004, 2)
    metrics.claim_observed("skadi", 0.002, 0)
    metrics.claim_observed("fenrir", 0.5, 1)
    found = samples(metrics)
    assert value(found, "ygg_claim_duration_seconds_count", pool="skadi") == 2
    assert value(found, "ygg_claim_duration_seconds_bucket", pool="skadi", le="0.0005") == 1
    assert value(found, "ygg_tasks_claimed_total", pool="skadi") == 2
    assert value(found, "ygg_tasks_claimed_total", pool="fenrir") == 1


def test_attempts_by_pool_kind_and_outcome() -> None:
    metrics = Metrics()
    metrics.attempt_finished("skadi", "code", "done", 12.0)
    metrics.attempt_finished("skadi", "code", "done", 20.0)
    metrics.attempt_finished("skadi", "code", "retry", 0.2)
    found = samples(metrics)
    done = {"pool": "skadi", "kind": "code", "outcome": "done"}
    assert value(found, "ygg_attempt_duration_seconds_count", **done) == 2
    assert value(found, "ygg_attempt_duration_seconds_sum", **done) == 32.0
    assert value(found, "ygg_attempt_duration_seconds_bucket", **done, le="10.0") == 0
    assert value(found, "ygg_attempt_duration_seconds_bucket", **done, le="30.0") == 2
    retry = {"pool": "skadi", "kind": "code", "outcome": "retry"}
    assert value(found, "ygg_attempt_duration_seconds_count", **retry) == 1


def test_queue_wait_never_negative() -> None:
    metrics = Metrics()
    metrics.queue_wait_observed("skadi", "code", -0.5)  # another machine's clock runs ahead
    metrics.queue_wait_observed("skadi", "code", 42.0)
    found = samples(metrics)
    labels = {"pool": "skadi", "kind": "code"}
    assert value(found, "ygg_queue_wait_seconds_sum", **labels) == 42.0
    assert value(found, "ygg_queue_wait_seconds_bucket", **labels, le="0.001") == 1


def test_lease_and_reaper_counters() -> None:
    metrics = Metrics()
    metrics.leases_renewed(3)
    metrics.leases_renewed(0)
    metrics.leases_renewed(4)
    metrics.tasks_reaped(2)
    found = samples(metrics)
    assert value(found, "ygg_leases_renewed_total") == 7
    assert value(found, "ygg_tasks_reaped_total") == 2


def test_state_gauges_come_from_the_snapshot() -> None:
    found = samples(Metrics(), snapshot())
    assert value(found, "ygg_tasks", status="queued") == 12
    assert value(found, "ygg_tasks", status="waiting") == 0
    assert value(found, "ygg_pool_slots", pool="fenrir") == 3
    assert value(found, "ygg_pool_limit", pool="fenrir") == 3  # a pool that is not adaptive
    assert value(found, "ygg_pool_running", pool="skadi") == 2
    assert value(found, "ygg_pool_queued", pool="fenrir") == 7
    assert value(found, "ygg_pool_queued", pool="surtr") == 0  # missing from the load: zero
    breaker = {p: value(found, "ygg_pool_breaker_state", pool=p) for p in ("skadi", "fenrir")}
    assert breaker == {"skadi": 0, "fenrir": 2}
    assert value(found, "ygg_pool_breaker_state", pool="surtr") == 1
    assert value(found, "ygg_pool_breaker_state", pool="odd") == -1
    info = [s for s in found if s.name == "ygg_daemon_info"]
    assert [s.labels["mode"] for s in info] == ["async"]


def test_without_a_snapshot_only_the_process_is_described() -> None:
    found = samples(Metrics(), None)
    names = {s.name for s in found}
    assert not names & {"ygg_tasks", "ygg_pool_slots", "ygg_pool_breaker_state"}
    assert value(found, "ygg_process_resident_memory_bytes") > 1_000_000
    assert value(found, "ygg_process_open_fds") >= 3
    assert value(found, "ygg_process_cpu_seconds_total") > 0


def test_every_name_is_prefixed_and_instances_are_independent() -> None:
    first, second = Metrics(), Metrics()  # would raise on a shared registry
    first.tasks_reaped(5)
    found = samples(first, snapshot())
    assert all(s.name.startswith("ygg_") for s in found)
    assert value(samples(second), "ygg_tasks_reaped_total") == 0


def test_a_rendered_snapshot_is_not_kept_for_the_next_scrape() -> None:
    metrics = Metrics()
    metrics.render(snapshot())
    assert "ygg_tasks" not in {s.name for s in samples(metrics, None)}


def test_progress_ages_and_window_are_served_even_without_a_snapshot() -> None:
    now = [100.0]
    progress = Progress(max_age_s=30.0, clock=lambda: now[0])
    progress.expect("reaper")
    progress.expect("lease_keeper")
    now[0] = 104.0
    progress.beat("reaper")
    now[0] = 112.5
    metrics = Metrics(progress)
    for snap in (snapshot(), None):  # None: the store could not be read for this scrape
        found = samples(metrics, snap)
        assert value(found, "ygg_progress_age_seconds", loop="reaper") == 8.5
        assert value(found, "ygg_progress_age_seconds", loop="lease_keeper") == 12.5
        assert value(found, "ygg_progress_window_seconds") == 30.0
    progress.beat("lease_keeper")
    assert value(samples(metrics), "ygg_progress_age_seconds", loop="lease_keeper") == 0.0


def test_without_progress_no_progress_gauges() -> None:
    names = {s.name for s in samples(Metrics(), snapshot())}
    assert not names & {"ygg_progress_age_seconds", "ygg_progress_window_seconds"}


def test_usage_is_counted_and_timed_per_pool() -> None:
    metrics = Metrics()
    metrics.usage_observed("gpu", Outcome("a", 10, 40, first_token_s=0.2, generation_s=2.0))
    metrics.usage_observed("gpu", Outcome("b", 5, 8, first_token_s=0.03, generation_s=0.1))
    # A host that did not stream nor count: nothing observed, nothing invented.
    metrics.usage_observed("gpu", Outcome("c"))
    found = samples(metrics)
    assert value(found, "ygg_tokens_total", pool="gpu", direction="in") == 15
    assert value(found, "ygg_tokens_total", pool="gpu", direction="out") == 48
    assert value(found, "ygg_first_token_seconds_count", pool="gpu") == 2
    assert value(found, "ygg_first_token_seconds_sum", pool="gpu") == pytest.approx(0.23)
    assert value(found, "ygg_first_token_seconds_bucket", pool="gpu", le="0.05") == 1
    assert value(found, "ygg_tokens_per_second_count", pool="gpu") == 2
    assert value(found, "ygg_tokens_per_second_sum", pool="gpu") == pytest.approx(20.0 + 80.0)
    assert value(found, "ygg_tokens_per_second_bucket", pool="gpu", le="20.0") == 1
