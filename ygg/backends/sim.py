"""A simulated host: sleeps, then answers. For demos, tests and benchmarks."""

from __future__ import annotations

import asyncio

from ygg.backends.base import AttemptFailed, Job
from ygg.backends.host_model import Served, host_model, prefill_share
from ygg.config import PoolConfig
from ygg.store.model import Outcome


def sim_seconds(job: Job, pool: PoolConfig) -> float:
    raw = job.params.get("seconds", pool.seconds)
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise AttemptFailed(
            f"param seconds must be a number, not {raw!r}", retryable=False
        ) from None
    return max(seconds, 0.0)


def sim_tokens(job: Job) -> int:
    """The answer's length in tokens: param `tokens`, else 1."""
    raw = job.params.get("tokens", 1)
    try:
        return max(int(raw), 1)
    except (TypeError, ValueError):
        raise AttemptFailed(
            f"param tokens must be a whole number, not {raw!r}", retryable=False
        ) from None


def sim_outcome(job: Job, served: Served | None = None, tokens: int = 1) -> Outcome:
    if str(job.params.get("fail", "")).lower() == "true":
        raise AttemptFailed("simulated failure (param fail=true)", retryable=True)
    first_s, generation_s = (None, None) if served is None else served
    return Outcome(f"sim: {job.title}", len(job.prompt.split()), tokens, first_s, generation_s)


class SimBackend:
    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool
        self.host = host_model(pool)  # None: every request takes its `seconds`, however many

    async def run(self, job: Job) -> Outcome:
        seconds, tokens = sim_seconds(job, self.pool), sim_tokens(job)
        if self.host is not None:
            return sim_outcome(job, await self.host.serve(seconds, tokens), tokens)
        if seconds > 0:
            await asyncio.sleep(seconds)
        first_s = seconds * prefill_share(tokens)
        return sim_outcome(job, Served(first_s, seconds - first_s), tokens)

    async def health(self) -> bool:
        return True

    def reconfigure(self, pool: PoolConfig) -> None:
        self.pool = pool

    async def aclose(self) -> None:
        return None
