"""What an LLM host says about its own load, read from the endpoints it already has.

- Ollama `GET /api/ps`: the models loaded, each with `size` and `size_vram` (a model with
  less in VRAM than its size runs partly on the CPU, an order of magnitude slower);
- vLLM `GET /metrics`: `vllm:num_requests_running`, `vllm:num_requests_waiting` and
  `vllm:kv_cache_usage_perc` (a fraction, 0-1; `vllm:gpu_cache_usage_perc` before v0.8);
- llama.cpp `GET /slots` (`is_processing` per slot) and, when started with `--metrics`,
  `GET /metrics`: `llamacpp:requests_processing`, `llamacpp:requests_deferred`,
  `llamacpp:kv_cache_usage_ratio`.

The parsers are pure: bytes in, a `HostTelemetry` (or None: the host said nothing we can read)
out, never an exception. `HostTelemetry.saturation()` is the small, stable answer the
adaptive-slots controller reads: why the host itself says it is full, or None.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

SOURCES = ("ollama", "vllm", "llamacpp")
KV_CACHE_SATURATED = 0.8  # vLLM starts preempting requests as its KV cache fills up
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)")
_VLLM_GAUGES = ("vllm:num_requests_", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_LLAMACPP_GAUGES = ("llamacpp:requests_", "llamacpp:kv_cache_usage_ratio")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


class ModelLoad(NamedTuple):
    """One model a host holds in memory (Ollama)."""

    name: str
    size_bytes: int
    vram_bytes: int

    @property
    def vram_ratio(self) -> float:
        """How much of the model is in GPU memory: 1.0 all of it, 0.0 none."""
        return min(self.vram_bytes / self.size_bytes, 1.0) if self.size_bytes > 0 else 1.0


@dataclass(frozen=True)
class HostTelemetry:
    """One reading of a host's load. A field the host does not report is None (or empty)."""

    source: str  # ollama | vllm | llamacpp
    models: tuple[ModelLoad, ...] = ()
    running: int | None = None  # requests the host is working on
    waiting: int | None = None  # requests queued inside the host
    kv_cache_usage: float | None = None  # fraction of the KV cache in use, 0-1
    slots: int | None = None  # llama.cpp: its parallel slots
    spilled_to_cpu: tuple[str, ...] = ()  # models partly (or wholly) in system memory
    warnings: tuple[str, ...] = ()

    def saturation(self) -> str | None:
        """Why the host itself says it is saturated, in one phrase; None if it does not."""
        if self.spilled_to_cpu:
            return f"model {', '.join(self.spilled_to_cpu)} spills to the CPU"
        if self.waiting:
            what = "deferred" if self.source == "llamacpp" else "waiting"
            return f"{self.waiting} requests {what} in the host"
        if self.kv_cache_usage is not None and self.kv_cache_usage >= KV_CACHE_SATURATED:
            return f"KV cache {self.kv_cache_usage:.0%} full"
        if self.slots and self.running is not None and self.running >= self.slots:
            return f"all {self.slots} slots busy"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "models": [
                {
                    "name": m.name,
                    "size_bytes": m.size_bytes,
                    "vram_bytes": m.vram_bytes,
                    "vram_ratio": round(m.vram_ratio, 4),
                }
                for m in self.models
            ],
            "running": self.running,
            "waiting": self.waiting,
            "kv_cache_usage": self.kv_cache_usage,
            "slots": self.slots,
            "spilled_to_cpu": list(self.spilled_to_cpu),
            "saturated": self.saturation(),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Any) -> HostTelemetry | None:
        """The reverse of to_json (as stored); None for anything else."""
        if not isinstance(data, dict) or data.get("source") not in SOURCES:
            return None
        models = tuple(
            ModelLoad(
                str(m.get("name", "")),
                _count(m.get("size_bytes")) or 0,
                _count(m.get("vram_bytes")) or 0,
            )
            for m in data.get("models") or ()
            if isinstance(m, dict)
        )
        usage = data.get("kv_cache_usage")
        return cls(
            source=data["source"],
            models=models,
            running=_count(data.get("running")),
            waiting=_count(data.get("waiting")),
            kv_cache_usage=float(usage) if isinstance(usage, int | float) else None,
            slots=_count(data.get("slots")),
            spilled_to_cpu=tuple(str(s) for s in data.get("spilled_to_cpu") or ()),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
        )


# --- Ollama ----------------------------------------------------------------------------------
def parse_ollama_ps(body: bytes) -> HostTelemetry | None:
    """`GET /api/ps`: `{"models": [{"name", "size", "size_vram", ...}]}`."""
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        return None
    models = tuple(
        ModelLoad(_name(m), size, _count(m.get("size_vram")) or 0)
        for m in data["models"]
        if isinstance(m, dict) and (size := _count(m.get("size"))) is not None
    )
    # A host without a GPU holds every model in system memory: that is its normal, not a
    # spill. A model with nothing in VRAM beside others on the GPU was pushed out of it.
    gpu = any(m.vram_bytes > 0 for m in models)
    spilled = tuple(m for m in models if gpu and m.vram_bytes < m.size_bytes)
    warnings = tuple(
        f"model {m.name} runs {1 - m.vram_ratio:.0%} on the CPU "
        f"({_gb(m.vram_bytes)} of {_gb(m.size_bytes)} in GPU memory)"
        for m in spilled
    )
    return HostTelemetry(
        "ollama", models, spilled_to_cpu=tuple(m.name for m in spilled), warnings=warnings
    )


def _name(model: dict[str, Any]) -> str:
    return str(model.get("name") or model.get("model") or "?")


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


# --- Prometheus text (vLLM, llama.cpp) --------------------------------------------------------
def prometheus_samples(
    text: str, names: tuple[str, ...] = ()
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by metric name, with their labels; only names starting with one of `names`, if
    given (a busy vLLM's page is thousands of histogram lines: they are skipped unread, which
    keeps a reading well under a millisecond of the daemon's loop). Tolerant: a line it cannot
    read is skipped (a whole exposition is never refused for one odd line)."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if names and not line.startswith(names):
            continue
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        found = dict(_LABEL.findall(labels or ""))
        samples.setdefault(name, []).append((found, number))
    return samples


def parse_vllm_metrics(body: bytes) -> HostTelemetry | None:
    samples = prometheus_samples(_text(body), _VLLM_GAUGES)
    running = _total(samples, "vllm:num_requests_running")
    waiting = _total(samples, "vllm:num_requests_waiting")
    usage = _highest(samples, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    if running is None and waiting is None and usage is None:
        return None
    return HostTelemetry("vllm", running=running, waiting=waiting, kv_cache_usage=usage)


def parse_llamacpp_metrics(body: bytes) -> HostTelemetry | None:
    samples = prometheus_samples(_text(body), _LLAMACPP_GAUGES)
    running = _total(samples, "llamacpp:requests_processing")
    deferred = _total(samples, "llamacpp:requests_deferred")
    usage = _highest(samples, "llamacpp:kv_cache_usage_ratio")
    if running is None and deferred is None and usage is None:
        return None
    return HostTelemetry("llamacpp", running=running, waiting=deferred, kv_cache_usage=usage)


def parse_llamacpp_slots(body: bytes) -> HostTelemetry | None:
    """`GET /slots`: a list of slots, each with `is_processing`."""
    data = _json(body)
    if not isinstance(data, list) or not data:
        return None
    slots = [s for s in data if isinstance(s, dict) and isinstance(s.get("is_processing"), bool)]
    if len(slots) != len(data):
        return None
    busy = sum(1 for s in slots if s["is_processing"])
    return HostTelemetry("llamacpp", running=busy, slots=len(slots))


def merge_llamacpp(
    slots: HostTelemetry | None, metrics: HostTelemetry | None
) -> HostTelemetry | None:
    """Both llama.cpp readings as one: the slot count from /slots, the rest from /metrics."""
    if slots is None or metrics is None:
        return slots or metrics
    return HostTelemetry(
        "llamacpp",
        running=metrics.running if metrics.running is not None else slots.running,
        waiting=metrics.waiting,
        kv_cache_usage=metrics.kv_cache_usage,
        slots=slots.slots,
    )


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> int | None:
    """The sum over every series of a gauge (vLLM has one per engine and model)."""
    if name not in samples:
        return None
    total = sum(value for _, value in samples[name])
    return int(total) if math.isfinite(total) and total >= 0 else None


def _highest(samples: dict[str, list[tuple[dict[str, str], float]]], *names: str) -> float | None:
    """The fullest series of the first name present, clamped to 0-1."""
    for name in names:
        values = [v for _, v in samples.get(name, ()) if math.isfinite(v)]
        if values:
            return round(min(max(*values, 0.0), 1.0), 4)
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")
