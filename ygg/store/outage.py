"""What a daemon knows of its store being out of reach, and how long it waits between tries.

A database server that is down (at the daemon's start or mid-run), a lost network, a full disk:
the threads that talk to the store wait it out and try again with capped, jittered exponential
backoff, and record it here so that `/healthz`, systemd's status line and the watchdog can
tell "waiting for the database" from "stuck". A lock held by another process (StoreBusy) is
not an outage: the busy timeout already waited, and the next try comes at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog

from ygg.errors import StoreFull, StoreUnavailable

log = structlog.get_logger("ygg.store")
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 10.0  # so a database back after a long outage is found within seconds
JITTER = 0.2  # ±20%: daemons on many machines that lost the server together do not return in step


def retry_delay_s(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """The wait before try `attempt + 1` (attempt counts from 1): FIRST_RETRY_S doubling each
    time, at most MAX_RETRY_S, then jittered by ±JITTER."""
    base_s = min(MAX_RETRY_S, FIRST_RETRY_S * 2.0 ** max(attempt - 1, 0))
    return float(round(base_s * (1 - JITTER + 2 * JITTER * rng()), 3))


class Outage:
    """The store's state as the daemon's threads saw it last; safe to use from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.reason: str | None = None  # why the store is unavailable now; None while it works
        self.since: float | None = None  # when this outage began (clock)
        self.retries = 0  # every try made while out of reach: proof the threads still move
        self.ended: float | None = None  # when the last outage ended (clock)

    def failed(self, exc: StoreUnavailable, attempt: int) -> float:
        """Records a failed try (the `attempt`-th in a row of its thread); logs it with the
        wait before the next one, which it returns."""
        delay_s = retry_delay_s(attempt)
        event = "store_disk_full" if isinstance(exc, StoreFull) else "store_unavailable"
        log.error(event, error=str(exc), attempt=attempt, retry_in_s=delay_s)
        with self._lock:
            began = self.reason is None
            self.reason = str(exc)
            self.retries += 1
            if began:
                self.since = self._clock()
        return delay_s

    def recovered(self) -> None:
        """A try succeeded: the outage, if there was one, is over."""
        if self.reason is None:  # the common case, without the lock
            return
        with self._lock:
            if self.reason is None:
                return
            down_s = self._clock() - (self.since or self._clock())
            self.reason, self.since, self.ended = None, None, self._clock()
        log.info("store_available", down_s=round(down_s, 3))

    def settled(self, window_s: float) -> bool:
        """No outage now, nor one that ended within `window_s`."""
        with self._lock:
            reason, ended = self.reason, self.ended
        return reason is None and (ended is None or self._clock() - ended >= window_s)

    def progress(self) -> int:
        """A count that moves every second while an outage is being waited out, for the
        watchdog: a daemon waiting for its database with backoff is not stuck (its tries are
        bounded by the connect timeout), and a restart by systemd would not bring the
        database back."""
        with self._lock:
            since = self.since
        return self.retries + (int(self._clock() - since) if since is not None else 0)

    def down_s(self) -> float:
        """How long the store has been out of reach; 0.0 while it answers."""
        with self._lock:
            since = self.since
        return 0.0 if since is None else max(self._clock() - since, 0.0)

    def describe(self) -> str | None:
        """One line for /healthz while the store is out of reach; None while it works."""
        reason = self.reason
        if reason is None:
            return None
        return f"store unavailable for {self.down_s():.0f} s, retrying: {reason}"
