"""Liveness for `/healthz`: the daemon's periodic loops each report a beat; it is healthy while
every one of them has beaten recently.

Answering the request proves only that the event loop runs; a beat from a loop that goes through
the store thread (the reaper, the lease keeper) proves the database and that thread move too.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def stall_window_s(lease_s: float, poll_s: float) -> float:
    """How long a periodic loop may go without a beat before the daemon counts as making no
    progress (/healthz, and the systemd watchdog with at least its interval): three of the
    longest loop periods (the lease keeper's lease_s / 3, the reaper's at most poll_s), so a
    long but healthy pass is not taken for a stall, and never under ten seconds."""
    return max(10.0, 3 * max(lease_s / 3, poll_s))


class Progress:
    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._beats: dict[str, float] = {}
        self.stopped = False  # set when the daemon begins to stop: it is no longer healthy

    def expect(self, name: str) -> None:
        """Counts `name` as beating from now on (so a loop that never runs is noticed)."""
        self._beats.setdefault(name, self._clock())

    def beat(self, name: str) -> None:
        self._beats[name] = self._clock()

    def ages(self) -> dict[str, float]:
        """Seconds since each expected loop last beat (or was first expected)."""
        now = self._clock()
        return {name: max(now - at, 0.0) for name, at in sorted(self._beats.items())}

    def stale(self) -> list[str]:
        """The loops that have not beaten within `max_age_s`."""
        now = self._clock()
        return sorted(name for name, at in self._beats.items() if now - at > self.max_age_s)

    def healthy(self) -> bool:
        return not self.stopped and not self.stale()
