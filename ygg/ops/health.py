"""Probing every pool's host once, concurrently, for `ygg status`."""

from __future__ import annotations

import asyncio

from ygg.backends import make_backend
from ygg.config import Config, PoolConfig
from ygg.errors import YggError

PROBE_TIMEOUT_S = 2.0


async def _probe(pool: PoolConfig, timeout_s: float) -> str:
    try:
        backend = make_backend(pool)
    except YggError as exc:
        return f"unknown: {exc}"
    try:
        async with asyncio.timeout(timeout_s):
            return "ok" if await backend.health() else "down"
    except TimeoutError:
        return "down"
    finally:
        await backend.aclose()


async def _probe_all(config: Config, timeout_s: float) -> dict[str, str]:
    names = list(config.pools)
    results = await asyncio.gather(*(_probe(config.pools[n], timeout_s) for n in names))
    return dict(zip(names, results, strict=True))


def probe_all(config: Config, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, str]:
    """Each pool's host health: ok, down, or unknown (with the reason)."""
    return asyncio.run(_probe_all(config, timeout_s))
