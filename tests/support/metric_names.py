"""Every sample name the daemon's /metrics can carry: what the Grafana dashboard and the alert
rules may read, and nothing else."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ygg.backends.telemetry import HostTelemetry, ModelLoad
from ygg.ops.metrics import Metrics
from ygg.ops.progress import Progress
from ygg.ops.snapshot import PoolInfo, build_snapshot, daemon_info
from ygg.store.model import Outcome

_OLLAMA = HostTelemetry("ollama", (ModelLoad("m", 2, 1),), spilled_to_cpu=("m",)).to_json()
_VLLM = HostTelemetry("vllm", running=1, waiting=0, kv_cache_usage=0.5).to_json()


def exported_sample_names() -> set[str]:
    """Every sample name the daemon's /metrics can carry, each kind of event observed once."""
    progress = Progress(max_age_s=30.0)
    progress.expect("reaper")
    metrics = Metrics(progress)
    metrics.claim_observed("p", 0.001, 1)
    metrics.attempt_finished("p", "k", "done", 1.0)
    metrics.queue_wait_observed("p", "k", 1.0)
    metrics.usage_observed("p", Outcome("x", 3, 5, first_token_s=0.1, generation_s=0.5))
    metrics.leases_renewed(1)
    metrics.tasks_reaped(1)
    snapshot = build_snapshot(
        daemon=daemon_info(1, "async", None, None, "/q.db"),
        pools=[
            PoolInfo("p", "h", "sim", 1, ("k",)),
            # Hosts that report their load: every figure one of them can give.
            PoolInfo("o", "h", "ollama", 1, telemetry=_OLLAMA),
            PoolInfo("v", "h", "openai", 1, telemetry=_VLLM),
        ],
        load={},
        counts={},
        running=[],
    )
    text = metrics.render(snapshot).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}
