"""A model of an LLM host under load, for the sim backend: what adaptive slots are tested and
benchmarked against without a GPU.

Batched decoding: up to `knee` requests at once, each runs at full speed (the batch is free);
past the knee the host's throughput stays flat, so the requests share it (each progresses at
knee / n). Past `capacity` (the KV cache is full) the host either refuses the extra request
with a 503, or spills to the CPU and everything slows by `SPILL_SLOWDOWN`. Each request holds
an amount of work in seconds at full speed; its progress follows the rate of the moment
(processor sharing), so a request's time depends on who else runs beside it, as on a GPU.
"""

from __future__ import annotations

import asyncio
import threading
import time

from ygg.backends.base import AttemptFailed
from ygg.config import PoolConfig

SPILL_SLOWDOWN = 4.0  # past capacity, "slow": every request runs this many times slower
STEP_S = 0.01  # progress is re-rated at least this often


class HostModel:
    def __init__(self, knee: int, capacity: int = 0, overload: str = "slow") -> None:
        self.knee = knee  # 0: no knee (every request at full speed)
        self.capacity = capacity  # 0: no limit
        self.overload = overload  # "503" | "slow"
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def rate(self, running: int) -> float:
        """How fast each of `running` requests progresses (1.0: full speed)."""
        speed = 1.0 if not self.knee or running <= self.knee else self.knee / running
        if self.capacity and running > self.capacity and self.overload == "slow":
            speed /= SPILL_SLOWDOWN
        return speed

    def enter(self) -> None:
        with self._lock:
            if self.capacity and self.overload == "503" and self.running >= self.capacity:
                raise AttemptFailed("sim host answered HTTP 503: at capacity", retryable=True)
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self._lock:
            self.running -= 1

    def step_s(self, remaining_s: float) -> tuple[float, float]:
        """The next sleep, and the work it does at the rate of the moment."""
        speed = self.rate(self.running)
        sleep_s = min(STEP_S, remaining_s / speed)
        return sleep_s, sleep_s * speed

    async def serve(self, work_s: float) -> None:
        """Holds a place on the host until `work_s` of work is done (async mode)."""
        self.enter()
        try:
            while work_s > 1e-9:
                sleep_s, done = self.step_s(work_s)
                await asyncio.sleep(sleep_s)
                work_s -= done
        finally:
            self.leave()

    def serve_blocking(self, work_s: float, stop: threading.Event, deadline: float) -> bool:
        """The same on a thread; False if `stop` was set or the deadline passed first."""
        self.enter()
        try:
            while work_s > 1e-9:
                sleep_s, done = self.step_s(work_s)
                if stop.wait(sleep_s) or time.monotonic() > deadline:
                    return False
                work_s -= done
            return True
        finally:
            self.leave()


def host_model(pool: PoolConfig) -> HostModel | None:
    """The pool's host model, if its configuration asks for one (`sim_knee`, `sim_capacity`)."""
    if not pool.sim_knee and not pool.sim_capacity:
        return None
    return HostModel(pool.sim_knee, pool.sim_capacity, pool.sim_overload)
