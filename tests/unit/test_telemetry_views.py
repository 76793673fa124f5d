"""Host telemetry as operators see it: `ygg status` lines, `/metrics` gauges, and which
daemon's reading a pool shows."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.telemetry import GB
from ygg.backends.telemetry import HostTelemetry, ModelLoad
from ygg.ops.metrics import Metrics
from ygg.ops.snapshot import PoolInfo, build_snapshot, daemon_info, latest_telemetry
from ygg.ops.status import telemetry_lines, telemetry_summary
from ygg.store.model import HostReport

SPILLED = HostTelemetry(
    "ollama",
    (ModelLoad("qwen", 6 * GB, 3 * GB), ModelLoad("embed", GB, GB)),
    spilled_to_cpu=("qwen",),
    warnings=("model qwen runs 50% on the CPU (3.0 GB of 6.0 GB in GPU memory)",),
)
VLLM = HostTelemetry("vllm", running=4, waiting=0)  # this vLLM gives no KV cache figure
LLAMACPP = HostTelemetry("llamacpp", running=2, slots=2)


def test_status_lines_say_what_each_host_says_and_warn() -> None:
    pools = [
        {"name": "gpu", "telemetry": SPILLED.to_json()},
        {"name": "cloud", "telemetry": None},
        {"name": "vllm", "telemetry": VLLM.to_json()},
        {"name": "cpu", "telemetry": LLAMACPP.to_json()},
        {"name": "idle", "telemetry": HostTelemetry("ollama").to_json()},
    ]
    assert telemetry_lines(pools) == [
        "host of gpu (ollama): qwen 50% in GPU memory, embed 100% in GPU memory; "
        "saturated: model qwen spills to the CPU",
        "  warning: model qwen runs 50% on the CPU (3.0 GB of 6.0 GB in GPU memory)",
        "host of vllm (vllm): 4 running, 0 waiting",
        "host of cpu (llamacpp): 2/2 running; saturated: all 2 slots busy",
        "host of idle (ollama): no model loaded",
    ]
    assert telemetry_summary({"source": "vllm"}) == "nothing to report"


def test_host_gauges_only_for_what_a_host_reports() -> None:
    snap = build_snapshot(
        daemon=daemon_info(1, "async", None, None, "/q.db"),
        pools=[
            PoolInfo("gpu", "h", "ollama", 1, telemetry=SPILLED.to_json()),
            PoolInfo("vllm", "h", "openai", 1, telemetry=VLLM.to_json()),
            PoolInfo("cloud", "h", "openai", 1),
        ],
        load={},
        counts={},
        running=[],
    )
    text = Metrics().render(snap).decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("ygg_host_")
    }
    assert found == {
        ("ygg_host_model_vram_ratio", (("model", "qwen"), ("pool", "gpu"))): 0.5,
        ("ygg_host_model_vram_ratio", (("model", "embed"), ("pool", "gpu"))): 1.0,
        ("ygg_host_saturated", (("pool", "gpu"),)): 1.0,
        ("ygg_host_requests_running", (("pool", "vllm"),)): 4.0,
        ("ygg_host_requests_waiting", (("pool", "vllm"),)): 0.0,
        ("ygg_host_saturated", (("pool", "vllm"),)): 0.0,
    }


def test_a_pool_shows_the_latest_reading_of_a_live_daemon() -> None:
    reports = [
        HostReport(1, "gpu", {"source": "vllm", "running": 1}, 100),
        HostReport(2, "gpu", {"source": "vllm", "running": 2}, 300),  # newest, but dead
        HostReport(3, "gpu", {"source": "vllm", "running": 3}, 200),
        HostReport(1, "cpu", {"source": "llamacpp", "slots": 2}, 50),
    ]
    assert latest_telemetry(reports, live={1, 3}) == {
        "gpu": {"source": "vllm", "running": 3},
        "cpu": {"source": "llamacpp", "slots": 2},
    }
    assert latest_telemetry(reports, live=set()) == {}
