"""Backends by name; each module is imported only when a pool uses it."""

from __future__ import annotations

from ygg.backends.base import AttemptFailed, Backend, Job
from ygg.config import PoolConfig


def make_backend(pool: PoolConfig) -> Backend:
    if pool.backend == "sim":
        from ygg.backends.sim import SimBackend

        return SimBackend(pool)
    if pool.backend == "command":
        from ygg.backends.command import CommandBackend

        return CommandBackend(pool)
    from ygg.backends.http import HttpBackend

    return HttpBackend(pool)


__all__ = ["AttemptFailed", "Backend", "Job", "make_backend"]
