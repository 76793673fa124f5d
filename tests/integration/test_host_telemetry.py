"""Reading hosts' load over real HTTP: HostProbe and HostWatch against FakeHost on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
import structlog

from tests.support.daemons import wait_until
from tests.support.hosts import FakeHost
from tests.support.telemetry import GB, llamacpp_metrics, llamacpp_slots, ollama_ps, vllm_metrics
from ygg.backends.host_probe import HostProbe, server_root
from ygg.backends.telemetry import HostTelemetry
from ygg.config import PoolConfig, RetryPolicy
from ygg.dispatch.host_watch import HostWatch, HostWatchThread


def pool(backend: str, url: str, name: str = "p", api_key_env: str | None = None) -> PoolConfig:
    return PoolConfig(
        name, backend, ("general",), RetryPolicy(), url=url, model="m", api_key_env=api_key_env
    )


def read(config: PoolConfig) -> HostTelemetry | None:
    async def once() -> HostTelemetry | None:
        probe = HostProbe(config, timeout_s=2.0)
        try:
            return await probe.read()
        finally:
            await probe.aclose()

    return asyncio.run(once())


@pytest.fixture
def ollama() -> Iterator[FakeHost]:
    with FakeHost("ollama") as host:
        yield host


@pytest.fixture
def openai() -> Iterator[FakeHost]:
    with FakeHost("openai") as host:
        yield host


def test_server_root_is_beside_v1() -> None:
    assert server_root("http://gpu:8000/v1") == "http://gpu:8000"
    assert server_root("http://gpu:8000/v1/") == "http://gpu:8000"
    assert server_root("http://gpu:8080") == "http://gpu:8080"
    assert server_root("https://proxy/llm/v1") == "https://proxy/llm"


def test_ollama_api_ps_is_read(ollama: FakeHost) -> None:
    ollama.serve("/api/ps", ollama_ps(("qwen2.5:7b", 6 * GB, 4 * GB), ("embed", GB, GB)))
    found = read(pool("ollama", ollama.url))
    assert found is not None and found.spilled_to_cpu == ("qwen2.5:7b",)
    assert [r.path for r in ollama.requests] == ["/api/ps"]


def test_vllm_metrics_are_read_beside_v1(openai: FakeHost) -> None:
    openai.serve("/metrics", vllm_metrics(5, 2, 0.61))
    found = read(pool("openai", f"{openai.url}/v1"))
    assert found == HostTelemetry("vllm", running=5, waiting=2, kv_cache_usage=0.61)
    assert [r.path for r in openai.requests] == ["/metrics"]  # vLLM found: /slots not asked


def test_llamacpp_slots_and_metrics_are_read_together(openai: FakeHost) -> None:
    openai.serve("/slots", llamacpp_slots(2, 2))
    found = read(pool("openai", f"{openai.url}/v1"))
    assert found == HostTelemetry("llamacpp", running=2, slots=2)  # /metrics is 404 here
    openai.serve("/metrics", llamacpp_metrics(2, 1))
    found = read(pool("openai", f"{openai.url}/v1"))
    assert found == HostTelemetry("llamacpp", running=2, waiting=1, slots=2)


def test_the_api_key_goes_along(openai: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YGG_TEST_KEY", "k-123")
    openai.serve("/slots", llamacpp_slots(0, 1))
    assert read(pool("openai", openai.url, api_key_env="YGG_TEST_KEY")) is not None
    assert {r.headers.get("authorization") for r in openai.requests} == {"Bearer k-123"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/metrics", "<html>metrics are not enabled</html>", 501),  # llama.cpp without --metrics
        ("/metrics", "# HELP go_goroutines x\ngo_goroutines 3\n", 200),  # someone else's metrics
        ("/slots", {"error": {"code": 501, "message": "This server does not support slots"}}, 501),
        ("/slots", b"\x00\x01 not json", 200),
    ],
)
def test_a_host_that_says_nothing_readable_gives_none(
    openai: FakeHost, path: str, body: object, status: int
) -> None:
    openai.serve(path, body, status)
    assert read(pool("openai", openai.url)) is None


def test_a_host_that_cannot_be_reached_gives_none() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        assert read(pool("ollama", f"http://127.0.0.1:{port}")) is None
        assert read(pool("openai", f"http://127.0.0.1:{port}/v1")) is None


def test_a_host_too_slow_to_answer_gives_none() -> None:
    async def slow(url: str) -> HostTelemetry | None:
        probe = HostProbe(pool("ollama", url), timeout_s=0.2)
        try:
            return await probe.read()
        finally:
            await probe.aclose()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)  # the kernel completes the connection; nobody ever answers
        assert asyncio.run(slow(f"http://127.0.0.1:{sock.getsockname()[1]}")) is None


def test_host_watch_reports_changes_only_and_warns_once(ollama: FakeHost, openai: FakeHost) -> None:
    pools = [pool("ollama", ollama.url, "o"), pool("openai", f"{openai.url}/v1", "v")]
    ollama.serve("/api/ps", ollama_ps(("a", 4 * GB, 4 * GB)))

    async def scenario() -> list[dict[str, HostTelemetry | None]]:
        watch = HostWatch(silent_poll_s=60.0)
        seen = []
        try:
            seen.append(await watch.refresh(pools, 0.0, 5.0))  # both read: o talks, v is silent
            seen.append(await watch.refresh(pools, 1.0, 5.0))  # neither due
            ollama.serve("/api/ps", ollama_ps(("a", 4 * GB, 2 * GB), ("b", GB, GB)))
            openai.serve("/metrics", vllm_metrics(1, 0, 0.1))
            seen.append(await watch.refresh(pools, 5.0, 5.0))  # o due again; v not until 60
            seen.append(await watch.refresh(pools, 10.0, 5.0))  # o unchanged: nothing to record
            seen.append(await watch.refresh(pools, 60.0, 5.0))  # v found at last
            assert watch.reading("o") is not None and watch.reading("v") is not None
            seen.append(await watch.refresh(pools[1:], 61.0, 5.0))  # o removed by a reload
            seen.append(await watch.refresh(pools[1:], 70.0, 0.0))  # telemetry turned off
            assert watch.latest == {}
        finally:
            await watch.aclose()
        return seen

    with structlog.testing.capture_logs() as logs:
        seen = asyncio.run(scenario())
    assert [sorted(c) for c in seen] == [["o"], [], ["o"], [], ["v"], ["o"], ["v"]]
    first, spilled = seen[0]["o"], seen[2]["o"]
    assert first is not None and first.warnings == ()
    assert spilled is not None and spilled.spilled_to_cpu == ("a",)
    assert seen[5] == {"o": None} and seen[6] == {"v": None}
    events = [(e["event"], e.get("pool")) for e in logs]
    assert events.count(("host_warning", "o")) == 1  # read twice while spilled, warned once
    assert events.count(("host_telemetry_none", "v")) == 1
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert len([r for r in openai.requests if r.path == "/metrics"]) == 2  # at 0 and at 60


def test_the_legacy_modes_thread_hands_changes_over_and_stops_at_once(ollama: FakeHost) -> None:
    ollama.serve("/api/ps", ollama_ps(("a", 4 * GB, 4 * GB)))
    watcher = HostWatchThread(lambda: [pool("ollama", ollama.url, "o")], lambda: 0.05)
    watcher.start()
    try:
        taken: dict[str, HostTelemetry | None] = {}
        assert wait_until(lambda: bool(taken.update(watcher.take()) or taken), 10)
        assert list(taken) == ["o"] and taken["o"] is not None
        ollama.unserve("/api/ps")  # now 404: the host fell silent
        assert wait_until(lambda: watcher.take().get("o", "same") is None, 10)
    finally:
        watcher.stop(timeout_s=5.0)
    assert not watcher.thread.is_alive()


def test_a_reading_that_fails_unexpectedly_is_logged_not_raised(
    ollama: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: HostProbe) -> HostTelemetry | None:
        raise RuntimeError("a bug in a parser")

    monkeypatch.setattr(HostProbe, "read", broken)

    async def scenario() -> dict[str, HostTelemetry | None]:
        watch = HostWatch()
        try:
            return await watch.refresh([pool("ollama", ollama.url, "o")], 0.0, 5.0)
        finally:
            await watch.aclose()

    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(scenario()) == {}
    assert [(e["event"], e["pool"]) for e in logs] == [
        ("host_telemetry_failed", "o"),
        ("host_telemetry_none", "o"),
    ]
