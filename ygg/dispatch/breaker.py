"""A circuit breaker per pool: stop sending work to a host that keeps failing.

closed --(N consecutive host failures)--> open --(cool-down, then a passing health probe)-->
half-open --(the one trial attempt succeeds)--> closed; a failed trial opens it again. While it
is not closed the pool claims nothing (half-open: one trial), so tasks stay `queued` and the
pools that list it as `fallback` take its kinds. Time is passed in, so tests need no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass
class Breaker:
    failures_to_open: int
    cooldown_s: float
    state: str = CLOSED
    failures: int = 0  # consecutive host failures while closed
    reason: str | None = None  # the last host failure, while not closed
    opened_at_s: float = 0.0

    def claim_limit(self, running: int, free_slots: int) -> int:
        """How many tasks the pool may claim now."""
        if self.state == CLOSED:
            return free_slots
        if self.state == HALF_OPEN and running == 0:
            return min(1, free_slots)  # the trial
        return 0

    def succeeded(self) -> bool:
        """The host answered; returns whether the state changed."""
        self.failures = 0
        if self.state == CLOSED:
            return False
        self.state, self.reason = CLOSED, None
        return True

    def failed(self, reason: str, now_s: float) -> bool:
        """A host failure (unreachable, 5xx, 429, timeout); returns whether the state changed."""
        self.failures += 1
        if self.state == OPEN or (self.state == CLOSED and self.failures < self.failures_to_open):
            return False
        self.state, self.reason, self.opened_at_s = OPEN, reason, now_s
        return True

    def probe_due_at_s(self) -> float:
        return self.opened_at_s + self.cooldown_s

    def probed(self, healthy: bool, now_s: float) -> bool:
        """The health probe's answer after the cool-down; returns whether the state changed."""
        if self.state != OPEN:
            return False
        if not healthy:
            self.opened_at_s = now_s  # another cool-down before the next probe
            return False
        self.state = HALF_OPEN
        return True
