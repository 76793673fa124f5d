"""Asking one HTTP pool's host how loaded it is: a few short GETs on a client of its own.

A host that says nothing — 404, 501, refused, a timeout, a body we cannot read — gives None,
never an exception: telemetry is a view, never a condition of dispatch. The client is the
probe's own, so a slow host's telemetry cannot take a connection an attempt needs.
"""

from __future__ import annotations

import httpx

from ygg.backends.telemetry import (
    HostTelemetry,
    merge_llamacpp,
    parse_llamacpp_metrics,
    parse_llamacpp_slots,
    parse_ollama_ps,
    parse_vllm_metrics,
)
from ygg.config import PoolConfig
from ygg.config.credentials import read_secret
from ygg.errors import YggError

PROBE_TIMEOUT_S = 2.0
MAX_BODY_BYTES = 4 * 1024 * 1024  # vLLM's /metrics, histograms and all, is some 100 KB
HTTP_BACKENDS = ("ollama", "openai")


def server_root(url: str) -> str:
    """The server's own root for an OpenAI-style base URL: vLLM and llama.cpp serve /metrics
    and /slots beside /v1, not under it."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


class HostProbe:
    """Reads one pool's host; `await read()` as often as wanted, `await aclose()` at the end."""

    def __init__(self, pool: PoolConfig, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        assert pool.backend in HTTP_BACKENDS and pool.url
        self.pool = pool
        headers = {}
        try:
            key = read_secret(pool.api_key_env) if pool.api_key_env else None
        except YggError:  # an unreadable credential: the pool's own backend says so
            key = None
        if key:  # llama.cpp started with --api-key wants it on /slots and /metrics too
            headers["authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            headers=headers,
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            trust_env=False,
        )

    async def read(self) -> HostTelemetry | None:
        url = self.pool.url or ""
        if self.pool.backend == "ollama":
            body = await self._get(f"{url}/api/ps")
            return parse_ollama_ps(body) if body is not None else None
        root = server_root(url)
        metrics = await self._get(f"{root}/metrics")
        if metrics is not None and (vllm := parse_vllm_metrics(metrics)) is not None:
            return vllm
        llamacpp = parse_llamacpp_metrics(metrics) if metrics is not None else None
        slots = await self._get(f"{root}/slots")
        return merge_llamacpp(parse_llamacpp_slots(slots) if slots is not None else None, llamacpp)

    async def _get(self, url: str) -> bytes | None:
        """The body of a 200 answer, else None (whatever went wrong)."""
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        return None
                return bytes(body)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError):
            return None

    async def aclose(self) -> None:
        await self._client.aclose()
