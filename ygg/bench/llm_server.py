"""`ygg bench adaptive --llm-server URL`: adaptive slots against a few fixed slot counts on a
real OpenAI-compatible server (llama.cpp's llama-server, see ../shared/tools/llm-server), in
real time. The streamed answer gives the time to first token (queueing for one of the server's
slots included) and the time per token."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ygg import api
from ygg.bench.adaptive import KIND, converged_at_s, percentile, pool_config, run_once
from ygg.config import Config
from ygg.store.model import NewTask

TOPICS = ("the sea", "a lighthouse", "bread", "winter", "a fox", "trains", "rain", "a library")
MAX_TOKENS = (32, 128)  # each answer's cap, uniform: lengths vary as real answers do


class LlmRun(NamedTuple):
    setting: str
    done: int
    tasks_per_s: float
    tokens_per_s: float
    p95_s: float
    final_limit: int | None
    converged_s: float | None
    limits: list[tuple[float, int]]


def config_text(url: str, setting: int | None, ceiling: int) -> str:
    return pool_config(
        "openai",
        setting,
        ceiling,
        f"""\
url = {json.dumps(url)}
model = "smollm2-135m"
max_attempts = 100
timeout = 300
backoff_seconds = 1
""",
    )


def llm_tasks(count: int, seed: int = 13) -> Callable[[Config], list[NewTask]]:
    rng = random.Random(seed)
    picks = [(rng.choice(TOPICS), rng.randint(*MAX_TOKENS)) for _ in range(count)]

    def tasks(config: Config) -> list[NewTask]:
        return [
            api.new_task(
                config,
                title=f"story {i + 1}",
                kind=KIND,
                prompt=f"Write a short story about {topic}.",
                params={"max_tokens": cap, "temperature": 0.7},
            )
            for i, (topic, cap) in enumerate(picks)
        ]

    return tasks


def run_llm_server(
    url: str,
    fixed: Sequence[int],
    ceiling: int,
    duration_s: float,
    progress: Callable[[str], None],
) -> list[LlmRun]:
    """Fixed settings, then adaptive slots up to `ceiling`, each for `duration_s` real seconds."""
    tasks = llm_tasks(max(200, int(duration_s * 10)))
    runs = []
    for setting in (*fixed, None):
        label = "adaptive" if setting is None else str(setting)
        progress(f"llm-server: {label} for {duration_s:g} s ...")
        run = run_once(label, config_text(url, setting, ceiling), tasks, 1.0, duration_s)
        limits = list(run.limits)
        runs.append(
            LlmRun(
                label,
                run.done,
                round(run.throughput, 3),
                round(run.tokens_out / duration_s, 1),
                round(percentile(run.latencies_s, 0.95), 2),
                limits[-1][1] if limits else None,
                converged_at_s(run.limits),
                limits,
            )
        )
    return runs


def llm_report(runs: Sequence[LlmRun], url: str, duration_s: float) -> str:
    lines = [
        f"llama-server at {url}; each setting {duration_s:g} s of real time; answers of "
        f"{MAX_TOKENS[0]} to {MAX_TOKENS[1]} tokens at most.",
        "setting    done  tasks/s  tokens/s  p95 s  limit (adaptive: where it ended)",
    ]
    for r in runs:
        limit = "" if r.final_limit is None else str(r.final_limit)
        if r.setting == "adaptive" and r.limits:
            seen = sorted({n for _, n in r.limits})
            limit += f" (visited {', '.join(map(str, seen))})"
        lines.append(
            f"{r.setting:<9} {r.done:5}  {r.tasks_per_s:7.3f}  {r.tokens_per_s:8.1f}  "
            f"{r.p95_s:5.1f}  {limit}"
        )
    return "\n".join(lines)
