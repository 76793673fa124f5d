"""The Ollama and OpenAI backends over one async HTTP client per pool.

httpx rather than aiohttp: it has the same API in blocking form, which the legacy
thread-per-pool dispatcher uses, it never follows redirects unless told to, and its timeouts
are explicit per phase. The total deadline of an attempt is the dispatcher's asyncio.timeout,
so a host that trickles bytes cannot hold a slot past `timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import structlog

from ygg.backends.base import MAX_RESPONSE_BYTES, AttemptFailed, Job
from ygg.backends.decoding import ACCEPT_ENCODING, BodyReader
from ygg.backends.protocols import Answer, Ollama, OpenAI, Request
from ygg.config import PoolConfig
from ygg.config.credentials import read_secret
from ygg.errors import ConfigError
from ygg.store.model import Outcome

log = structlog.get_logger("ygg.backends")
CONNECT_TIMEOUT_S = 10.0


def api_key(pool: PoolConfig) -> str | None:
    if not pool.api_key_env:
        return None
    key = read_secret(pool.api_key_env)
    if key is None:
        raise ConfigError(
            f"pools.{pool.name}.api_key_env names {pool.api_key_env}, which is neither a "
            f"non-empty environment variable nor a systemd credential "
            f"(LoadCredential={pool.api_key_env}:...)."
        )
    return key


def protocol_for(pool: PoolConfig) -> Ollama | OpenAI:
    return Ollama(pool) if pool.backend == "ollama" else OpenAI(pool, api_key(pool))


def classify(exc: httpx.HTTPError, host: str) -> AttemptFailed:
    """Transport errors: never reaching the host is not charged; the rest is retryable."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return AttemptFailed(f"{host} cannot be reached: {exc}", retryable=True, unreachable=True)
    if isinstance(exc, httpx.TimeoutException):
        return AttemptFailed(f"{host} timed out: {type(exc).__name__}", retryable=True)
    return AttemptFailed(f"{host} connection failed: {exc or type(exc).__name__}", retryable=True)


async def _read_capped(response: httpx.Response, host: str) -> bytes:
    reader = BodyReader(response.headers.get("content-encoding"), host, MAX_RESPONSE_BYTES)
    async for chunk in response.aiter_raw():
        reader.feed(chunk)
    return reader.body()


def attempt_timeout(timeout_s: float) -> httpx.Timeout:
    """Every phase of one request bounded by its attempt's timeout (the task's own may be
    longer or shorter than the pool's); connecting at most CONNECT_TIMEOUT_S of it."""
    return httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))


@dataclass(eq=False)
class _Client:
    """One httpx client and the requests in flight on it."""

    http: httpx.AsyncClient
    max_connections: int
    in_flight: int = 0
    retired: bool = False  # replaced by a reload: it closes once in_flight is back to 0


def _max_connections(pool: PoolConfig) -> int:
    return max(pool.slots, 1) * 2  # room for health probes beside every slot


def _new_client(pool: PoolConfig) -> _Client:
    max_connections = _max_connections(pool)
    http = httpx.AsyncClient(
        timeout=attempt_timeout(pool.retry.timeout_s),
        follow_redirects=False,
        headers={"accept-encoding": ACCEPT_ENCODING},
        limits=httpx.Limits(max_connections=max_connections),
        trust_env=False,
    )
    return _Client(http, max_connections)


class HttpBackend:
    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool
        self.protocol = protocol_for(pool)
        self._client = _new_client(pool)
        self._retired: set[_Client] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def reconfigure(self, pool: PoolConfig) -> None:
        """Takes a reload's settings: timeouts at the next request; a changed connection limit
        with a new client, while the old one finishes its requests and then closes."""
        self.pool = pool
        if _max_connections(pool) == self._client.max_connections:
            return
        old, self._client = self._client, _new_client(pool)
        old.retired = True
        self._retired.add(old)
        log.info(
            "http_client_resized",
            pool=pool.name,
            max_connections=self._client.max_connections,
            draining=old.in_flight,
        )
        if old.in_flight == 0:
            self._close_soon(old)

    async def send(
        self, request: Request, timeout_s: float | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        async with self._exchange(request, timeout_s) as response:
            body = await _read_capped(response, self.pool.host)
            return response.status_code, dict(response.headers), body

    @contextlib.asynccontextmanager
    async def _exchange(
        self, request: Request, timeout_s: float | None
    ) -> AsyncIterator[httpx.Response]:
        """One request on the current client; leaving (a cancel included) closes it at once."""
        client = self._client
        client.in_flight += 1
        timeout = attempt_timeout(timeout_s or self.pool.retry.timeout_s)
        try:
            async with client.http.stream(
                request.method,
                request.url,
                headers=request.headers,
                content=request.body,
                timeout=timeout,
            ) as response:
                yield response
        except httpx.HTTPError as exc:
            raise classify(exc, self.pool.host) from None
        finally:
            client.in_flight -= 1
            if client.retired and client.in_flight == 0:
                self._close_soon(client)

    def _close_soon(self, client: _Client) -> None:
        """Closes a retired client on the loop (its last request may be being cancelled)."""
        self._retired.discard(client)
        task = asyncio.get_running_loop().create_task(client.http.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("http_client_close_failed", pool=self.pool.name, error=repr(task.exception()))

    async def run(self, job: Job) -> Outcome:
        request = self.protocol.chat(job)
        started_s = time.monotonic()  # time to first token counts from here
        async with self._exchange(request, job.timeout_s) as response:
            answer = Answer(self.protocol, response.status_code, dict(response.headers), started_s)
            async for chunk in response.aiter_raw():
                answer.feed(chunk, time.monotonic())
            return answer.outcome(time.monotonic())

    async def health(self) -> bool:
        headers = self.protocol.health_headers() if isinstance(self.protocol, OpenAI) else {}
        try:
            status, _, _ = await self.send(
                Request("GET", f"{self.pool.url}{self.protocol.health_path}", headers)
            )
        except AttemptFailed:
            return False
        return 200 <= status < 300

    async def aclose(self) -> None:
        for client in [self._client, *self._retired]:
            await client.http.aclose()
        self._retired.clear()
        if self._closing:
            await asyncio.wait(set(self._closing))
