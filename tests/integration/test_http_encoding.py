"""Compressed answers (Content-Encoding gzip or deflate) through both HTTP transports, from a
real host on 127.0.0.1; and a decompression bomb, refused at the size cap with bounded memory.
"""

from __future__ import annotations

import tracemalloc

import pytest

from tests.conftest import MakeConfig
from tests.integration.test_backends import (
    DISPATCHERS,
    MODES,
    Mode,
    e2e_config,
    failure_of,
    http_pool,
    job,
    run_job,
    run_until_idle,
    submit,
)
from tests.support.encodings import Encoding, zeros_gzip
from tests.support.hosts import FakeHost, Protocol, Step
from ygg.backends.base import MAX_RESPONSE_BYTES
from ygg.store import open_store

ENCODINGS = pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
PROTOCOLS = pytest.mark.parametrize("protocol", ["ollama", "openai"])
BOMB_MIB = 1024  # 1 GiB of zeros, about 1 MiB on the wire


@pytest.fixture
def bomb() -> bytes:
    return zeros_gzip(BOMB_MIB)


@MODES
@PROTOCOLS
@ENCODINGS
def test_compressed_answer_is_decoded(
    make_config: MakeConfig, mode: Mode, protocol: Protocol, encoding: Encoding
) -> None:
    with FakeHost(protocol) as host:
        host.default = Step(encoding=encoding)
        pool = http_pool(make_config, host.url, backend=protocol)
        outcome = run_job(pool, job("hello big world"), mode)
        [request] = host.chat_requests
    assert outcome.result == "echo: hello big world"
    assert (outcome.tokens_in, outcome.tokens_out) == (3, 4)
    assert request.headers["accept-encoding"] == "gzip, deflate"  # nothing we cannot decode


@MODES
def test_compressed_error_answer_is_read(make_config: MakeConfig, mode: Mode) -> None:
    with FakeHost("openai") as host:
        host.script(Step(status=429, retry_after="7", encoding="gzip"))
        failed = failure_of(http_pool(make_config, host.url, backend="openai"), job(), mode)
    assert failed.retryable and failed.retry_after_s == 7
    assert "HTTP 429: scripted HTTP 429" in failed.message


@MODES
def test_unknown_content_encoding_is_a_clear_error(make_config: MakeConfig, mode: Mode) -> None:
    with FakeHost("ollama") as host:
        host.script(Step(body=b"\x00\x01", headers=(("Content-Encoding", "br"),)))
        failed = failure_of(http_pool(make_config, host.url), job(), mode)
    assert not failed.retryable
    assert "content encoding 'br'" in failed.message and "gzip, deflate" in failed.message


@MODES
def test_decompression_bomb_hits_the_size_cap(
    make_config: MakeConfig, mode: Mode, bomb: bytes
) -> None:
    with FakeHost("ollama") as host:
        host.script(Step(body=bomb, headers=(("Content-Encoding", "gzip"),)))
        pool = http_pool(make_config, host.url)
        tracemalloc.start()
        try:
            failed = failure_of(pool, job(), mode)
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (failed.retryable, failed.unreachable) == (False, False)
    assert f"more than {MAX_RESPONSE_BYTES} bytes once decoded (gzip)" in failed.message
    # The cap, not the bomb's gigabyte, bounds what was held: a few times the cap at most.
    assert peak_bytes < 3 * MAX_RESPONSE_BYTES, peak_bytes


@DISPATCHERS
def test_e2e_compressed_answers_and_a_bomb(
    make_config: MakeConfig, legacy: bool, bomb: bytes
) -> None:
    with FakeHost("ollama") as host:
        host.script(
            Step(encoding="gzip"),
            Step(encoding="deflate"),
            Step(body=bomb, headers=(("Content-Encoding", "gzip"),)),
        )
        config = e2e_config(make_config, host.url, extra="max_attempts = 3")
        store = open_store(config.daemon.db)
        tasks = [submit(store, config, f"t{i}", prompt=f"job {i}", priority=i) for i in range(3)]
        run_until_idle(config, legacy)
    gzipped, deflated, bombed = (store.get(t.id) for t in tasks)
    assert (gzipped.status, gzipped.result) == ("done", "echo: job 0")
    assert (deflated.status, deflated.result) == ("done", "echo: job 1")
    assert (bombed.status, bombed.attempts) == ("failed", 1)  # refused, not retried
    assert "once decoded (gzip)" in (bombed.error or "")
