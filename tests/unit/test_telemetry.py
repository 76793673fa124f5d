"""The host telemetry parsers (ygg/backends/telemetry.py), on payloads shaped as real ones."""

from __future__ import annotations

import json

import pytest

from tests.support.telemetry import GB, llamacpp_metrics, llamacpp_slots, ollama_ps, vllm_metrics
from ygg.backends.telemetry import (
    HostTelemetry,
    ModelLoad,
    merge_llamacpp,
    parse_llamacpp_metrics,
    parse_llamacpp_slots,
    parse_ollama_ps,
    parse_vllm_metrics,
    prometheus_samples,
)

GARBAGE = [
    b"",
    b"not json at all",
    b"<html><body>404 page not found</body></html>",
    b"\xff\xfe\x00garbage",
    b"{}",
    b'{"models": "none"}',
    b"[1, 2, 3]",
    b"null",
]


def _bytes(data: object) -> bytes:
    return json.dumps(data).encode()


def test_ollama_models_wholly_in_gpu_memory_are_fine() -> None:
    found = parse_ollama_ps(_bytes(ollama_ps(("qwen2.5-coder:7b", 6 * GB, 6 * GB))))
    assert found is not None
    assert found.source == "ollama"
    assert found.models == (ModelLoad("qwen2.5-coder:7b", 6 * GB, 6 * GB),)
    assert found.models[0].vram_ratio == 1.0
    assert (found.spilled_to_cpu, found.warnings, found.saturation()) == ((), (), None)


def test_an_ollama_model_partly_on_the_cpu_is_a_warning_and_saturation() -> None:
    payload = ollama_ps(("gemma3", 6_591_830_464, 5_333_539_264), ("nomic-embed", GB, GB))
    found = parse_ollama_ps(_bytes(payload))
    assert found is not None
    assert found.spilled_to_cpu == ("gemma3",)
    assert found.models[0].vram_ratio == pytest.approx(0.809, abs=0.001)
    assert found.warnings == ("model gemma3 runs 19% on the CPU (5.3 GB of 6.6 GB in GPU memory)",)
    assert found.saturation() == "model gemma3 spills to the CPU"


def test_an_ollama_model_pushed_wholly_off_the_gpu_beside_others_spills() -> None:
    found = parse_ollama_ps(_bytes(ollama_ps(("big", 9 * GB, 0), ("small", 2 * GB, 2 * GB))))
    assert found is not None and found.spilled_to_cpu == ("big",)
    assert "100% on the CPU" in found.warnings[0]


def test_an_ollama_host_without_a_gpu_is_not_spilling() -> None:
    # Every model in system memory is that host's normal, not a sign of load.
    found = parse_ollama_ps(_bytes(ollama_ps(("a", 2 * GB, 0), ("b", GB, 0))))
    assert found is not None
    assert [m.vram_ratio for m in found.models] == [0.0, 0.0]
    assert (found.spilled_to_cpu, found.warnings, found.saturation()) == ((), (), None)


def test_an_ollama_host_with_nothing_loaded_reports_no_models() -> None:
    found = parse_ollama_ps(b'{"models": []}')
    assert found == HostTelemetry("ollama")
    assert found.saturation() is None


@pytest.mark.parametrize("body", GARBAGE)
def test_garbage_is_no_telemetry_never_an_error(body: bytes) -> None:
    assert parse_ollama_ps(body) is None
    assert parse_vllm_metrics(body) is None
    assert parse_llamacpp_metrics(body) is None
    assert parse_llamacpp_slots(body) is None


def test_ollama_entries_without_a_size_are_skipped() -> None:
    body = _bytes({"models": [{"name": "odd", "size": "big"}, "x", {"name": "ok", "size": 10}]})
    found = parse_ollama_ps(body)
    assert found is not None and [m.name for m in found.models] == ["ok"]


def test_vllm_gauges_are_read_and_idle_is_not_saturated() -> None:
    found = parse_vllm_metrics(vllm_metrics(3, 0, 0.42).encode())
    assert found == HostTelemetry("vllm", running=3, waiting=0, kv_cache_usage=0.42)
    assert found.saturation() is None


def test_vllm_requests_waiting_mean_saturation() -> None:
    found = parse_vllm_metrics(vllm_metrics(8, 2, 0.5).encode())
    assert found is not None and found.saturation() == "2 requests waiting in the host"


@pytest.mark.parametrize(("usage", "saturated"), [(0.79, False), (0.8, True), (0.97, True)])
def test_a_full_vllm_kv_cache_means_saturation(usage: float, saturated: bool) -> None:
    found = parse_vllm_metrics(vllm_metrics(4, 0, usage).encode())
    assert found is not None
    assert (found.saturation() is not None) is saturated
    if saturated:
        assert found.saturation() == f"KV cache {usage:.0%} full"


def test_vllm_before_0_8_named_its_kv_cache_gauge_otherwise() -> None:
    found = parse_vllm_metrics(vllm_metrics(1, 0, 0.25, old_names=True).encode())
    assert found is not None and found.kv_cache_usage == 0.25


def test_vllm_engines_are_summed_and_the_fullest_kv_cache_counts() -> None:
    text = vllm_metrics(4, 2, 0.3, engines=2).replace(
        'vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.3',
        'vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.6',
    )
    found = parse_vllm_metrics(text.encode())
    assert found is not None
    assert (found.running, found.waiting, found.kv_cache_usage) == (4, 2, 0.6)


def test_metrics_of_another_server_are_not_vllm_telemetry() -> None:
    assert parse_vllm_metrics(llamacpp_metrics(1, 0).encode()) is None
    assert parse_llamacpp_metrics(vllm_metrics(1, 0, 0.1).encode()) is None
    assert parse_vllm_metrics(b"# HELP go_goroutines x\ngo_goroutines 12\n") is None


def test_odd_lines_of_an_exposition_are_skipped_not_fatal() -> None:
    text = "vllm:num_requests_running{broken 3\nvllm:num_requests_waiting NaN-ish\n"
    text += vllm_metrics(2, 1, 0.5) + "vllm:num_requests_waiting NaN\n"
    found = parse_vllm_metrics(text.encode())
    # The NaN sample makes the sum meaningless: that figure is left out, the rest stays.
    assert found is not None and (found.running, found.waiting) == (2, None)


def test_prometheus_labels_with_escaped_quotes_and_timestamps() -> None:
    text = 'm{a="x \\" y",b="2"} 1.5 1700000000000\nm 7\n'
    assert prometheus_samples(text) == {"m": [({"a": 'x \\" y', "b": "2"}, 1.5), ({}, 7.0)]}


def test_llamacpp_metrics_deferred_requests_mean_saturation() -> None:
    idle = parse_llamacpp_metrics(llamacpp_metrics(2, 0).encode())
    assert idle == HostTelemetry("llamacpp", running=2, waiting=0)
    assert idle.saturation() is None
    busy = parse_llamacpp_metrics(llamacpp_metrics(2, 3, kv_ratio=0.5).encode())
    assert busy is not None and busy.kv_cache_usage == 0.5
    assert busy.saturation() == "3 requests deferred in the host"


def test_llamacpp_slots_all_busy_mean_saturation() -> None:
    half = parse_llamacpp_slots(_bytes(llamacpp_slots(1, 2)))
    assert half == HostTelemetry("llamacpp", running=1, slots=2)
    assert half.saturation() is None
    full = parse_llamacpp_slots(_bytes(llamacpp_slots(2, 2)))
    assert full is not None and full.saturation() == "all 2 slots busy"


def test_llamacpp_slots_must_all_look_like_slots() -> None:
    assert parse_llamacpp_slots(_bytes([{"id": 0, "is_processing": False}, {"id": 1}])) is None
    assert parse_llamacpp_slots(_bytes([])) is None


def test_llamacpp_readings_merge_slot_count_and_metrics() -> None:
    slots = parse_llamacpp_slots(_bytes(llamacpp_slots(1, 4)))
    metrics = parse_llamacpp_metrics(llamacpp_metrics(3, 1, kv_ratio=0.2).encode())
    assert merge_llamacpp(slots, metrics) == HostTelemetry(
        "llamacpp", running=3, waiting=1, kv_cache_usage=0.2, slots=4
    )
    assert merge_llamacpp(slots, None) == slots
    assert merge_llamacpp(None, metrics) == metrics
    assert merge_llamacpp(None, None) is None


def test_json_round_trip_and_a_stored_reading_of_another_shape_is_ignored() -> None:
    spilled = parse_ollama_ps(_bytes(ollama_ps(("gemma3", 6 * GB, 3 * GB), ("x", GB, GB))))
    vllm = parse_vllm_metrics(vllm_metrics(3, 1, 0.9).encode())
    for reading in (spilled, vllm):
        assert reading is not None
        data = json.loads(json.dumps(reading.to_json()))
        assert data["saturated"] == reading.saturation()
        assert HostTelemetry.from_json(data) == reading
    for odd in (None, [], {"source": "tgi"}, {"models": []}, "vllm"):
        assert HostTelemetry.from_json(odd) is None


def test_only_the_wanted_names_are_read_when_asked() -> None:
    text = vllm_metrics(2, 1, 0.5)
    wanted = prometheus_samples(text, ("vllm:num_requests_",))
    assert set(wanted) == {"vllm:num_requests_running", "vllm:num_requests_waiting"}
    assert "python_gc_objects_collected_total" in prometheus_samples(text)
