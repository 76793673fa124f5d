"""Streaming and usage against the test hosts, which stream as real hosts do: both protocols,
the async backend and its blocking (legacy) form, and both dispatchers end to end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MakeConfig, subprocess_env
from tests.integration.test_backends import (
    DISPATCH_LIMIT_S,
    DISPATCHERS,
    MODES,
    RUN_LIMIT_S,
    Mode,
    http_pool,
    job,
    run_job,
    run_until_idle,
)
from tests.support.hosts import FakeHost, Step
from tests.support.llm_server import free_port
from ygg import api
from ygg.backends import make_backend
from ygg.backends.blocking import BlockingBackend, Interrupted
from ygg.config import Config, PoolConfig
from ygg.dispatch.dispatcher import Dispatcher
from ygg.dispatch.legacy import LegacyDispatcher
from ygg.store import open_store
from ygg.store.model import now_us

FIRST_TOKEN_S = 0.3  # the test host's pause before the first token
TOKEN_GAP_S = 0.05  # and between two tokens
# Generation spans the host's five gaps between six tokens. The client sees each token when it
# arrives, so a first token delivered late shortens what it measures (0.217 s and 0.249 s for
# 0.25 were seen on a loaded machine): half of it still tells a stream from a whole answer.
GENERATION_MIN_S = 5 * TOKEN_GAP_S / 2
PROMPT = "one two three four five"  # the host answers "echo: one two three four five"


@pytest.fixture(params=["ollama", "openai"])
def host(request: pytest.FixtureRequest) -> Iterator[FakeHost]:
    with FakeHost(request.param) as fake:
        fake.first_token_s, fake.token_gap_s = FIRST_TOKEN_S, TOKEN_GAP_S
        yield fake


def pool_for(make_config: MakeConfig, host: FakeHost) -> PoolConfig:
    return http_pool(make_config, host.url, backend=host.protocol)


@MODES
def test_the_first_token_is_seen_when_it_comes(
    make_config: MakeConfig, host: FakeHost, mode: Mode
) -> None:
    began = time.monotonic()
    outcome = run_job(pool_for(make_config, host), job(PROMPT), mode)
    took_s = time.monotonic() - began
    assert outcome[:3] == ("echo: one two three four five", 5, 6)
    assert outcome.first_token_s is not None and outcome.generation_s is not None
    # The host waited before the first token and between the six: both are seen as they
    # happened, and the first token came well before the whole answer.
    assert FIRST_TOKEN_S <= outcome.first_token_s < took_s
    assert outcome.generation_s >= GENERATION_MIN_S
    assert outcome.first_token_s + outcome.generation_s <= took_s
    [request] = host.chat_requests
    assert request.body["stream"] is True
    if host.protocol == "openai":
        assert request.body["stream_options"] == {"include_usage": True}


@MODES
def test_a_host_that_answers_whole_json_anyway(
    make_config: MakeConfig, host: FakeHost, mode: Mode
) -> None:
    host.script(Step(stream=False))
    outcome = run_job(pool_for(make_config, host), job(PROMPT), mode)
    assert outcome[:3] == ("echo: one two three four five", 5, 6)
    assert (outcome.first_token_s, outcome.generation_s) == (None, None)  # nothing streamed


@MODES
def test_a_compressed_stream_is_read_as_it_comes(
    make_config: MakeConfig, host: FakeHost, mode: Mode
) -> None:
    host.script(Step(encoding="gzip"))
    outcome = run_job(pool_for(make_config, host), job(PROMPT), mode)
    assert outcome[:3] == ("echo: one two three four five", 5, 6)
    assert outcome.generation_s is not None and outcome.generation_s >= GENERATION_MIN_S


def cancel_mid_stream_async(pool: PoolConfig, host: FakeHost) -> None:
    async def main() -> None:
        backend = make_backend(pool)
        try:
            attempt = asyncio.create_task(backend.run(job(PROMPT)))
            async with asyncio.timeout(RUN_LIMIT_S):
                while not host.chat_requests:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(FIRST_TOKEN_S + TOKEN_GAP_S)  # a token or two are in
            attempt.cancel()
            with pytest.raises(asyncio.CancelledError):
                await attempt
        finally:
            await backend.aclose()

    uvloop.run(main())


def cancel_mid_stream_blocking(pool: PoolConfig, host: FakeHost) -> None:
    backend = BlockingBackend(pool)
    stopped: list[BaseException] = []

    def attempt() -> None:
        try:
            backend.run(job(PROMPT), RUN_LIMIT_S)
        except BaseException as exc:
            stopped.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    try:
        assert host.wait_for_requests(1, timeout_s=RUN_LIMIT_S)
        time.sleep(FIRST_TOKEN_S + TOKEN_GAP_S)
        backend.interrupt()
        thread.join(RUN_LIMIT_S)
        assert not thread.is_alive()
        assert [type(exc) for exc in stopped] == [Interrupted]
    finally:
        backend.close()


@MODES
def test_a_cancel_mid_stream_closes_the_request(
    make_config: MakeConfig, host: FakeHost, mode: Mode
) -> None:
    host.token_gap_s = 5.0  # the answer would take half a minute
    pool = pool_for(make_config, host)
    if mode == "async":
        cancel_mid_stream_async(pool, host)
    else:
        cancel_mid_stream_blocking(pool, host)
    # The host saw its client go: it stopped generating, and no answer was completed.
    assert host.wait_for(lambda h: h.in_flight == 0 and h.open_connections == 0, timeout_s=2.0)
    [request] = host.chat_requests
    assert request.status is None


@DISPATCHERS
def test_usage_is_stored_and_shown(
    make_config: MakeConfig, tmp_path: Path, host: FakeHost, legacy: bool
) -> None:
    url = host.url if host.protocol == "ollama" else f"{host.url}/v1"
    config = make_config(
        f"""
[pools.gpu]
backend = "{host.protocol}"
url = "{url}"
model = "m"
kinds = ["general"]
""",
        defaults="timeout = 10",
    )
    store = open_store(config.daemon.db)
    task = api.submit(store, api.new_task(config, title="t", kind="general", prompt=PROMPT))
    run_until_idle(config, legacy)
    done = store.get(task.id)
    assert (done.status, done.tokens_in, done.tokens_out) == ("done", 5, 6)
    assert done.first_token_s is not None and done.first_token_s >= FIRST_TOKEN_S
    assert done.tokens_per_s is not None and 0 < done.tokens_per_s <= 6 / GENERATION_MIN_S
    shown = show(tmp_path, task.id, "--json")
    assert json.loads(shown)["first_token_s"] == done.first_token_s
    assert json.loads(shown)["tokens_per_s"] == round(done.tokens_per_s, 3)
    text = show(tmp_path, task.id)
    assert "tokens    5 in, 6 out" in text
    assert f"first token after {done.first_token_s:.3f} s" in text
    assert f"{done.tokens_per_s:.1f} tokens/s" in text


def usage_config(make_config: MakeConfig, host: FakeHost, daemon: str = "") -> Config:
    url = host.url if host.protocol == "ollama" else f"{host.url}/v1"
    return make_config(
        f'[pools.gpu]\nbackend = "{host.protocol}"\nurl = "{url}"\nmodel = "m"\n'
        'kinds = ["general"]\n',
        daemon=daemon,
        defaults="timeout = 10",
    )


def assert_usage_counted(text: str) -> None:
    """Two answers of 5 tokens in and 6 out, each streamed after FIRST_TOKEN_S."""
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert found[("ygg_tokens_total", (("direction", "in"), ("pool", "gpu")))] == 10
    assert found[("ygg_tokens_total", (("direction", "out"), ("pool", "gpu")))] == 12
    assert found[("ygg_first_token_seconds_count", (("pool", "gpu"),))] == 2
    assert found[("ygg_first_token_seconds_sum", (("pool", "gpu"),))] >= 2 * FIRST_TOKEN_S
    assert found[("ygg_tokens_per_second_count", (("pool", "gpu"),))] == 2


def test_the_pool_metrics_count_usage(make_config: MakeConfig, host: FakeHost) -> None:
    config = usage_config(make_config, host)
    store = open_store(config.daemon.db)
    for _ in range(2):
        api.submit(store, api.new_task(config, title="t", kind="general", prompt=PROMPT))
    dispatcher = Dispatcher(config, until_idle=True)

    async def main() -> None:
        async with asyncio.timeout(RUN_LIMIT_S):
            await dispatcher.run()

    uvloop.run(main())
    assert_usage_counted(dispatcher.observer.metrics.render(None).decode())


def test_the_legacy_daemon_serves_usage_metrics(make_config: MakeConfig, host: FakeHost) -> None:
    # The legacy mode's own /metrics, over HTTP, while its daemon runs.
    port = free_port()
    config = usage_config(make_config, host, daemon=f'status_listen = "127.0.0.1:{port}"')
    store = open_store(config.daemon.db)
    tasks = [
        api.submit(store, api.new_task(config, title="t", kind="general", prompt=PROMPT))
        for _ in range(2)
    ]
    dispatcher = LegacyDispatcher(config)
    thread = threading.Thread(target=dispatcher.run, name="legacy-under-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DISPATCH_LIMIT_S
        while any(store.get(t.id).status != "done" for t in tasks):
            assert time.monotonic() < deadline, "the legacy daemon did not finish its tasks"
            time.sleep(0.05)
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0, trust_env=False)
        assert response.status_code == 200
        assert_usage_counted(response.text)
        # Its /status has the stored limit, which another daemon may have set (here: 7).
        store.set_pool_limit("gpu", 7, daemon_id=None, now_us=now_us(), source="adaptive")
        status = httpx.get(f"http://127.0.0.1:{port}/status", timeout=5.0, trust_env=False)
        assert [(p["name"], p["limit"]) for p in status.json()["pools"]] == [("gpu", 7)]
    finally:
        dispatcher.request_stop()
        thread.join(10.0)
    assert not thread.is_alive(), "the legacy dispatcher did not stop"


def show(where: Path, task_id: int, *flags: str) -> str:
    """`ygg show` as a user runs it, beside the test's ygg.toml."""
    done = subprocess.run(
        [sys.executable, "-m", "ygg", "--config", "ygg.toml", "show", str(task_id), *flags],
        cwd=where,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout
