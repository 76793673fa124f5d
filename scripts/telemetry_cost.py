"""What reading a host's load costs the daemon: parsing a large vLLM /metrics page and a
whole Ollama /api/ps, and one HostProbe.read() over real HTTP (FakeHost on 127.0.0.1), as a
fraction of the poll interval (daemon.telemetry_seconds, default 5 s).

    .venv/bin/python scripts/telemetry_cost.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.hosts import FakeHost
from tests.support.telemetry import GB, ollama_ps, vllm_metrics
from ygg.backends.host_probe import HostProbe
from ygg.backends.telemetry import parse_ollama_ps, parse_vllm_metrics
from ygg.config import PoolConfig, RetryPolicy

POLL_S = 5.0
RUNS = 200


def big_vllm_page() -> bytes:
    """The gauges ygg reads among some 2,000 histogram lines, as a busy vLLM serves."""
    lines = [vllm_metrics(12, 3, 0.83, engines=2)]
    for name in ("time_to_first_token", "time_per_output_token", "e2e_request_latency"):
        for model in range(8):
            for le in range(80):
                lines.append(
                    f'vllm:{name}_seconds_bucket{{engine="0",model_name="m{model}",le="{le}"}} 7.0'
                )
    return "\n".join(lines).encode()


def median_s(work: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def probe_s(url: str) -> float:
    pool = PoolConfig("p", "openai", ("k",), RetryPolicy(), url=f"{url}/v1", model="m")
    probe = HostProbe(pool)
    try:
        await probe.read()  # the connection is made once, then kept alive
        times = []
        for _ in range(RUNS // 4):
            start = time.perf_counter()
            assert await probe.read() is not None
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        await probe.aclose()


def main() -> None:
    page = big_vllm_page()
    ps = json.dumps(ollama_ps(*((f"model{i}:7b", 6 * GB, 5 * GB) for i in range(8)))).encode()
    vllm_s = median_s(lambda: parse_vllm_metrics(page))
    ollama_s = median_s(lambda: parse_ollama_ps(ps))
    with FakeHost("openai") as host:
        host.serve("/metrics", page.decode())
        read_s = asyncio.run(probe_s(host.url))
    lines = len(page.splitlines())
    print(f"vLLM /metrics page: {len(page) / 1024:.0f} KiB, {lines} lines")
    for what, seconds in (
        ("parse vLLM /metrics", vllm_s),
        ("parse Ollama /api/ps (8 models)", ollama_s),
        ("HostProbe.read() over HTTP (vLLM page)", read_s),
    ):
        print(
            f"{what:<42} {seconds * 1e3:8.3f} ms   {seconds / POLL_S:8.5%} of a {POLL_S:.0f} s poll"
        )


if __name__ == "__main__":
    main()
