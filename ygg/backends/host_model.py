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
import contextlib
import threading
import time
from typing import NamedTuple

from ygg.backends.base import AttemptFailed
from ygg.config import PoolConfig

SPILL_SLOWDOWN = 4.0  # past capacity, "slow": every request runs this many times slower
STEP_S = 0.01  # progress is re-rated at least this often (thread mode)
PREFILL_TOKENS = 10  # reading the prompt takes as long as writing this many tokens


class Served(NamedTuple):
    first_token_s: float  # from the request's start to its first token
    generation_s: float  # from the first token to the last


class HostModel:
    def __init__(self, knee: int, capacity: int = 0, overload: str = "slow") -> None:
        self.knee = knee  # 0: no knee (every request at full speed)
        self.capacity = capacity  # 0: no limit
        self.overload = overload  # "503" | "slow"
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._waiters: set[asyncio.Event] = set()  # requests served in async mode
        self._speed = 1.0  # the rate they last saw

    def rate(self, running: int) -> float:
        """How fast each of `running` requests progresses (1.0: full speed)."""
        speed = 1.0 if not self.knee or running <= self.knee else self.knee / running
        if self.capacity and running > self.capacity and self.overload == "slow":
            speed /= SPILL_SLOWDOWN
        return speed

    def enter(self) -> None:
        with self._lock:
            if self.capacity and self.overload == "503" and self.running >= self.capacity:
                raise AttemptFailed(
                    "sim host answered HTTP 503: at capacity", retryable=True, overloaded=True
                )
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

    async def serve(self, work_s: float, tokens: int = 1) -> Served:
        """Holds a place on the host until `work_s` of work is done (async mode); the first of
        `tokens` comes after the work of PREFILL_TOKENS (reading the prompt), the rest evenly.

        Exact processor sharing: each request sleeps until it would finish at the rate of the
        moment, and is woken to re-rate whenever a request comes or goes and the rate changes.
        The times it reports are the model's, as a real host reports its own timings: a wake-up
        that comes late on a busy machine does not count as slow decoding.
        """
        loop = asyncio.get_running_loop()
        self.enter()
        wake = asyncio.Event()
        self._waiters.add(wake)
        self._rerate()
        first_s: float | None = None
        first_work_s = work_s * prefill_share(tokens)
        remaining_s, modelled_s = work_s, 0.0
        try:
            while remaining_s > 1e-9:
                speed, since = self.rate(self.running), loop.time()
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining_s / speed):
                        await wake.wait()
                done_s = min((loop.time() - since) * speed, remaining_s)
                if first_s is None and work_s - remaining_s + done_s >= first_work_s:
                    first_s = modelled_s + (first_work_s - (work_s - remaining_s)) / speed
                remaining_s -= done_s
                modelled_s += done_s / speed
        finally:
            self._waiters.discard(wake)
            self.leave()
            self._rerate()
        first_s = modelled_s if first_s is None else first_s
        return Served(first_token_s=first_s, generation_s=modelled_s - first_s)

    def _rerate(self) -> None:
        """Wakes every request to re-rate, if the rate changed since they last looked."""
        speed = self.rate(self.running)
        if speed != self._speed:
            self._speed = speed
            for wake in self._waiters:
                wake.set()

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


def prefill_share(tokens: int) -> float:
    """The share of a request's work done before its first token: reading the prompt takes as
    long as PREFILL_TOKENS, then each of the other tokens takes one token's time."""
    return PREFILL_TOKENS / (PREFILL_TOKENS + max(tokens, 1) - 1)


def host_model(pool: PoolConfig) -> HostModel | None:
    """The pool's host model, if its configuration asks for one (`sim_knee`, `sim_capacity`)."""
    if not pool.sim_knee and not pool.sim_capacity:
        return None
    return HostModel(pool.sim_knee, pool.sim_capacity, pool.sim_overload)
