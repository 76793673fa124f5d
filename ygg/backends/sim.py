"""A simulated host: sleeps, then answers. For demos, tests and benchmarks."""

from __future__ import annotations

import asyncio

from ygg.backends.base import AttemptFailed, Job
from ygg.backends.host_model import host_model
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


def sim_outcome(job: Job) -> Outcome:
    if str(job.params.get("fail", "")).lower() == "true":
        raise AttemptFailed("simulated failure (param fail=true)", retryable=True)
    return Outcome(result=f"sim: {job.title}", tokens_in=len(job.prompt.split()), tokens_out=1)


class SimBackend:
    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool
        self.host = host_model(pool)  # None: every request takes its `seconds`, however many

    async def run(self, job: Job) -> Outcome:
        seconds = sim_seconds(job, self.pool)
        if self.host is not None:
            await self.host.serve(seconds)
        elif seconds > 0:
            await asyncio.sleep(seconds)
        return sim_outcome(job)

    async def health(self) -> bool:
        return True

    def reconfigure(self, pool: PoolConfig) -> None:
        self.pool = pool

    async def aclose(self) -> None:
        return None
