"""The status endpoint served for real on 127.0.0.1, asked over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import httpx
import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MakeConfig
from ygg.cli.top import Source
from ygg.errors import ConfigError
from ygg.ops.http_status import (
    StatusServer,
    check_listen,
    parse_listen,
    start_status_server,
    status_token,
)
from ygg.ops.metrics import Metrics
from ygg.ops.progress import Progress
from ygg.ops.snapshot import PoolInfo, Snapshot, build_snapshot, daemon_info
from ygg.store import open_store

TIMEOUT_S = 5.0
SNAPSHOT = build_snapshot(
    daemon=daemon_info(1234, "async", None, None, "/q.db"),
    pools=[PoolInfo("sim-a", "localhost", "sim", 2, ("general",))],
    load={"sim-a": (1, 3)},
    counts={"queued": 3, "running": 1},
    running=[],
)
Test = Callable[[StatusServer, httpx.AsyncClient], Awaitable[None]]


async def fixed_snapshot() -> Snapshot:
    return SNAPSHOT


def serve(
    test: Test,
    *,
    token: str | None = None,
    healthy: Callable[[], bool] = lambda: True,
    snapshot: Callable[[], Awaitable[Snapshot]] = fixed_snapshot,
    metrics: Metrics | None = None,
    read_timeout_s: float = 5.0,
) -> None:
    async def main() -> None:
        server = StatusServer(
            "127.0.0.1:0",
            token,
            snapshot,
            healthy,
            metrics or Metrics(),
            read_timeout_s=read_timeout_s,
        )
        await server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            async with (
                asyncio.timeout(30),
                httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S, trust_env=False) as client,
            ):
                await test(server, client)
        finally:
            await server.close()

    uvloop.run(main())


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(TIMEOUT_S):
            return await reader.read()
    finally:
        writer.close()


def test_metrics_parse_as_prometheus_text() -> None:
    metrics = Metrics()
    metrics.attempt_finished("sim-a", "general", "done", 1.5)

    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["connection"] == "close"
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        tasks = {s.labels["status"]: s.value for s in families["ygg_tasks"].samples}
        assert tasks["queued"] == 3
        attempts = families["ygg_attempt_duration_seconds"].samples
        assert any(s.name.endswith("_count") and s.value == 1 for s in attempts)

    serve(test, metrics=metrics)


def test_status_is_the_snapshot_as_json() -> None:
    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        response = await client.get("/status?pretty=0")  # a query string is ignored
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == SNAPSHOT

    serve(test)


def test_healthz_follows_the_healthy_callable() -> None:
    state = {"healthy": True}

    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        ok = await client.get("/healthz")
        assert (ok.status_code, ok.text) == (200, "ok\n")
        state["healthy"] = False
        assert (await client.get("/healthz")).status_code == 503

    serve(test, healthy=lambda: state["healthy"])


def test_unknown_paths_and_methods() -> None:
    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        assert (await client.get("/nope")).status_code == 404
        put = await client.put("/status", content=b"{}")
        assert put.status_code == 405
        assert put.headers["allow"] == "GET"
        # Every POST needs a token (the contract); with none configured it is refused first.
        post = await client.post("/status", content=b"{}")
        assert post.status_code == 403
        assert "YGG_STATUS_TOKEN" in post.text
        assert (await client.head("/healthz")).status_code == 405
        reply = await raw_request(server.port, b"NONSENSE\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400 ")

    serve(test)


def test_a_failing_snapshot_leaves_metrics_up_and_status_unavailable() -> None:
    async def broken() -> Snapshot:
        raise RuntimeError("database is locked")

    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        assert (await client.get("/status")).status_code == 503
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        names = {f.name for f in text_string_to_metric_families(metrics.text)}
        assert "ygg_process_resident_memory_bytes" in names
        assert "ygg_tasks" not in names

    serve(test, snapshot=broken)


def test_a_token_is_required_on_every_path_when_set() -> None:
    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        for path in ("/metrics", "/healthz", "/status", "/nope"):
            missing = await client.get(path)
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/status", headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401
        basic = await client.get("/status", headers={"Authorization": "Basic s3cret"})
        assert basic.status_code == 401
        right = await client.get("/status", headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200

    serve(test, token="s3cret")


def test_an_oversized_request_is_refused() -> None:
    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        response = await client.get("/status", headers={"X-Padding": "a" * 20_000})
        assert response.status_code == 431
        assert (await client.get("/healthz")).status_code == 200

    serve(test)


def test_a_slow_client_neither_blocks_others_nor_stays_forever() -> None:
    async def test(server: StatusServer, client: httpx.AsyncClient) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /sta")  # and then nothing more
        await writer.drain()
        assert (await client.get("/healthz")).status_code == 200
        async with asyncio.timeout(TIMEOUT_S):
            reply = await reader.read()
        writer.close()
        assert reply.startswith(b"HTTP/1.1 408 ")

    serve(test, read_timeout_s=0.3)


def test_close_ends_open_connections_and_stops_listening() -> None:
    async def main() -> None:
        server = await start_status_server(
            "127.0.0.1:0", None, fixed_snapshot, lambda: True, Metrics()
        )
        assert server.port > 0
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /status HTTP/1.1\r\n")  # an unfinished request, held open
        await writer.drain()
        async with asyncio.timeout(TIMEOUT_S):
            await server.close()
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", server.port)

    uvloop.run(main())


def test_a_non_loopback_bind_without_a_token_refuses_to_start() -> None:
    async def main() -> None:
        await start_status_server("0.0.0.0:0", None, fixed_snapshot, lambda: True, Metrics())

    with pytest.raises(ConfigError, match="not a loopback address"):
        uvloop.run(main())


@pytest.mark.parametrize("listen", ["9464", "host", "::1:9464", "[::1]", "a:99999", "a b:1", ":1"])
def test_malformed_listen_values(listen: str) -> None:
    with pytest.raises(ConfigError, match="status_listen"):
        parse_listen(listen)


def test_listen_values_and_the_loopback_rule() -> None:
    assert check_listen("127.0.0.1:9464", None) == ("127.0.0.1", 9464)
    assert check_listen("[::1]:0", None) == ("::1", 0)
    assert check_listen("localhost:1", None) == ("localhost", 1)
    for exposed in ("0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464", "skadi:9464"):
        with pytest.raises(ConfigError, match="YGG_STATUS_TOKEN"):
            check_listen(exposed, None)
        assert check_listen(exposed, "t0ken")[1] == 9464


def test_token_from_env_then_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YGG_STATUS_TOKEN", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert status_token() is None
    (tmp_path / "ygg-status-token").write_text("from-file\n")
    assert status_token() == "from-file"
    monkeypatch.setenv("YGG_STATUS_TOKEN", "from-env")
    assert status_token() == "from-env"
    monkeypatch.setenv("YGG_STATUS_TOKEN", "")
    assert status_token() == "from-file"


def test_progress_goes_stale_without_beats() -> None:
    now = [100.0]
    progress = Progress(max_age_s=10.0, clock=lambda: now[0])
    progress.expect("reaper")
    progress.beat("lease_keeper")
    now[0] = 105.0
    progress.beat("reaper")
    now[0] = 112.0
    assert progress.stale() == ["lease_keeper"]
    assert not progress.healthy()
    progress.beat("lease_keeper")
    assert progress.healthy()
    progress.stopped = True
    assert not progress.healthy()


@contextmanager
def threaded_server(snapshot: Callable[[], Awaitable[Snapshot]]) -> Iterator[StatusServer]:
    """A server on its own loop in a thread, for the synchronous `ygg top` client."""
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    start = start_status_server("127.0.0.1:0", None, snapshot, lambda: True, Metrics())
    server = asyncio.run_coroutine_threadsafe(start, loop).result(TIMEOUT_S)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT_S)
        loop.close()


def top_fetch(make_config: MakeConfig, port: int) -> tuple[Snapshot, str]:
    config = make_config(
        '[pools.sim-a]\nbackend = "sim"\nkinds = ["general"]\n',
        daemon=f'status_listen = "127.0.0.1:{port}"',
    )
    source = Source(config, lambda: open_store(config.daemon.db), ask_daemon=True)
    try:
        return source.fetch()
    finally:
        source.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_top_reads_a_live_daemon_on_its_own_queue(make_config: MakeConfig, tmp_path: Path) -> None:
    ours = {**SNAPSHOT, "daemon": {**SNAPSHOT["daemon"], "queue": str(tmp_path / "queue.db")}}

    async def serve_ours() -> Snapshot:
        return cast(Snapshot, ours)

    with threaded_server(serve_ours) as server:
        snapshot, where = top_fetch(make_config, server.port)
    assert snapshot == ours
    assert where.startswith("live from http://127.0.0.1:")


def test_top_ignores_a_daemon_of_another_queue_on_the_port(make_config: MakeConfig) -> None:
    """Two configurations on one machine may share the default port: the daemon that answers
    there may serve another queue, and its pools and tasks are not ours to show."""
    with threaded_server(fixed_snapshot) as server:  # it serves /q.db
        snapshot, where = top_fetch(make_config, server.port)
    assert where.startswith("from the database (http://127.0.0.1:")
    assert "serves another queue (/q.db)" in where
    assert snapshot["daemon"]["pid"] is None
    assert [p["name"] for p in snapshot["pools"]] == ["sim-a"]


def test_top_falls_back_to_the_database(make_config: MakeConfig) -> None:
    snapshot, where = top_fetch(make_config, free_port())
    assert where.startswith("from the database (no daemon answered")
    assert [p["name"] for p in snapshot["pools"]] == ["sim-a"]
    assert snapshot["pools"][0]["breaker"] == "unknown"
    assert snapshot["daemon"]["pid"] is None


def test_top_ignores_a_stranger_on_the_port(make_config: MakeConfig) -> None:
    async def not_ours() -> Snapshot:
        return cast(Snapshot, {"hello": "world"})

    with threaded_server(not_ours) as server:
        snapshot, where = top_fetch(make_config, server.port)
    assert where.startswith("from the database (http://127.0.0.1:")
    assert "answered 200" in where
    assert [p["name"] for p in snapshot["pools"]] == ["sim-a"]
