"""The Ollama and OpenAI backends over one async HTTP client per pool.

httpx rather than aiohttp: it has the same API in blocking form, which the legacy
thread-per-pool dispatcher uses, it never follows redirects unless told to, and its timeouts
are explicit per phase. The total deadline of an attempt is the dispatcher's asyncio.timeout,
so a host that trickles bytes cannot hold a slot past `timeout`.
"""

from __future__ import annotations

import httpx

from ygg.backends.base import MAX_RESPONSE_BYTES, AttemptFailed, Job
from ygg.backends.decoding import ACCEPT_ENCODING, BodyReader
from ygg.backends.protocols import Ollama, OpenAI, Request, check_status
from ygg.config import PoolConfig
from ygg.credentials import read_secret
from ygg.errors import ConfigError
from ygg.store.model import Outcome

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


class HttpBackend:
    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool
        self.protocol = protocol_for(pool)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(pool.retry.timeout_s, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            headers={"accept-encoding": ACCEPT_ENCODING},
            limits=httpx.Limits(max_connections=max(pool.slots, 1) * 2),
            trust_env=False,
        )

    async def send(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        try:
            async with self._client.stream(
                request.method, request.url, headers=request.headers, content=request.body
            ) as response:
                body = await _read_capped(response, self.pool.host)
                return response.status_code, dict(response.headers), body
        except httpx.HTTPError as exc:
            raise classify(exc, self.pool.host) from None

    async def run(self, job: Job) -> Outcome:
        status, headers, body = await self.send(self.protocol.chat(job))
        check_status(status, headers, body, self.pool.host)
        return self.protocol.parse(body)

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
        await self._client.aclose()
