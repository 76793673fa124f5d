"""What LLM hosts say about their load, in the shapes the real servers use: for FakeHost.serve()
and the parser tests.

The llama.cpp samples were captured from the real `llama-server` in ../shared/tools/llm-server
(2 slots, `--metrics`, three requests at once); the Ollama shape is docs.ollama.com's /api/ps
example, the vLLM one an exposition of vLLM v1 (one series per engine and model).
"""

from __future__ import annotations

from typing import Any

GB = 1_000_000_000


def ollama_ps(*models: tuple[str, int, int]) -> dict[str, Any]:
    """`GET /api/ps` holding each (name, size, size_vram)."""
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "size": size,
                "digest": "a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a",
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": name.split(":")[0],
                    "families": [name.split(":")[0]],
                    "parameter_size": "7.6B",
                    "quantization_level": "Q4_K_M",
                },
                "expires_at": "2026-12-07T04:47:07.93355-07:00",
                "size_vram": size_vram,
                "context_length": 4096,
            }
            for name, size, size_vram in models
        ]
    }


def vllm_metrics(
    running: int, waiting: int, kv_cache: float, *, old_names: bool = False, engines: int = 1
) -> str:
    """`GET /metrics` of vLLM: the gauges ygg reads among others it ignores. `old_names`: before
    v0.8 the KV cache gauge was `vllm:gpu_cache_usage_perc`."""
    kv_name = "vllm:gpu_cache_usage_perc" if old_names else "vllm:kv_cache_usage_perc"
    lines = [
        "# HELP python_gc_objects_collected_total Objects collected during gc",
        "# TYPE python_gc_objects_collected_total counter",
        'python_gc_objects_collected_total{generation="0"} 12345.0',
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
    ]
    labels = [f'engine="{e}",model_name="Qwen/Qwen2.5-7B-Instruct"' for e in range(engines)]
    lines += [f"vllm:num_requests_running{{{lab}}} {running / engines}" for lab in labels]
    lines += [
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
    ]
    lines += [f"vllm:num_requests_waiting{{{lab}}} {waiting / engines}" for lab in labels]
    lines += [
        f"# HELP {kv_name} KV-cache usage. 1 means 100 percent usage.",
        f"# TYPE {kv_name} gauge",
    ]
    lines += [f"{kv_name}{{{lab}}} {kv_cache}" for lab in labels]
    lines += [
        "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.",
        "# TYPE vllm:time_to_first_token_seconds histogram",
        f'vllm:time_to_first_token_seconds_bucket{{{labels[0]},le="0.001"}} 0.0',
        f'vllm:time_to_first_token_seconds_bucket{{{labels[0]},le="+Inf"}} 12.0',
        f"vllm:time_to_first_token_seconds_count{{{labels[0]}}} 12.0",
        f"vllm:time_to_first_token_seconds_sum{{{labels[0]}}} 1.5",
    ]
    return "\n".join(lines) + "\n"


def llamacpp_slots(busy: int, total: int) -> list[dict[str, Any]]:
    """`GET /slots` of llama-server: the first `busy` slots processing."""
    slots: list[dict[str, Any]] = []
    for n in range(total):
        slot: dict[str, Any] = {
            "id": n,
            "n_ctx": 2048,
            "speculative": False,
            "is_processing": n < busy,
        }
        if n < busy:  # a busy slot also shows its task and sampling parameters
            slot.update(
                {
                    "id_task": 3 + n,
                    "n_prompt_tokens": 37,
                    "n_prompt_tokens_processed": 0,
                    "n_prompt_tokens_cache": 0,
                    "params": {
                        "seed": 4294967295,
                        "temperature": 0.8,
                        "top_k": 40,
                        "max_tokens": 200,
                        "n_predict": 200,
                        "stream": False,
                    },
                    "next_token": [
                        {
                            "has_next_token": True,
                            "has_new_line": False,
                            "n_remain": 200,
                            "n_decoded": 0,
                        }
                    ],
                }
            )
        slots.append(slot)
    return slots


def llamacpp_metrics(processing: int, deferred: int, kv_ratio: float | None = None) -> str:
    """`GET /metrics` of llama-server started with --metrics (this build has no KV cache
    gauge; older builds had `llamacpp:kv_cache_usage_ratio`)."""
    lines = [
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding "
        "cached tokens",
        "# TYPE llamacpp:prompt_tokens_total counter",
        "llamacpp:prompt_tokens_total 0",
        "# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s",
        "# TYPE llamacpp:predicted_tokens_seconds gauge",
        "llamacpp:predicted_tokens_seconds 0",
        "# HELP llamacpp:requests_processing Number of requests processing",
        "# TYPE llamacpp:requests_processing gauge",
        f"llamacpp:requests_processing {processing}",
        "# HELP llamacpp:requests_deferred Number of requests deferred",
        "# TYPE llamacpp:requests_deferred gauge",
        f"llamacpp:requests_deferred {deferred}",
        "# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode()",
        "# TYPE llamacpp:n_busy_slots_per_decode gauge",
        "llamacpp:n_busy_slots_per_decode 0",
    ]
    if kv_ratio is not None:
        lines += [
            "# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.",
            "# TYPE llamacpp:kv_cache_usage_ratio gauge",
            f"llamacpp:kv_cache_usage_ratio {kv_ratio}",
        ]
    return "\n".join(lines) + "\n"
