"""What a pool may run at once: its slots, or for an adaptive pool the controller's limit, fed
from each finished attempt (ygg.dispatch.adaptive holds the rules; this only translates)."""

from __future__ import annotations

import structlog

from ygg.backends import AttemptFailed
from ygg.config import PoolConfig
from ygg.dispatch.adaptive import AdaptiveLimit
from ygg.store.model import Outcome

log = structlog.get_logger("ygg.dispatch")


class AdaptiveSlots:
    """An adaptive pool's controller, or a plain pool's slots: the limit this daemon would set."""

    def __init__(self, config: PoolConfig) -> None:
        self.controller: AdaptiveLimit | None = None
        self.reconfigure(config)

    @property
    def value(self) -> int:
        return self.controller.limit if self.controller else self._slots

    def reconfigure(self, config: PoolConfig) -> None:
        """A reload: an adaptive pool keeps what it learnt, inside its new bounds."""
        self._slots = config.slots
        if not config.adaptive:
            self.controller = None
        elif self.controller is None:
            self.controller = AdaptiveLimit(config.min_slots, config.slots)
        else:
            self.controller.rebound(config.min_slots, config.slots)

    def learn(self, outcome: Outcome | None, failure: AttemptFailed | None, running: int) -> bool:
        """One attempt ended, with `running` attempts out (this one included); says whether
        the limit moved."""
        if self.controller is None:
            return False
        try:
            return self._learn(self.controller, outcome, failure, running)
        except Exception:  # a controller bug must not cost the attempt its outcome
            log.exception("adaptive_limit_failed")
            return False

    @staticmethod
    def _learn(
        controller: AdaptiveLimit,
        outcome: Outcome | None,
        failure: AttemptFailed | None,
        running: int,
    ) -> bool:
        if failure is not None:
            return failure.overloaded and controller.overloaded(running, failure.message)
        if outcome is None:
            return False
        return controller.succeeded(per_token_s(outcome), outcome.first_token_s)

    def adopt(self, limit: int) -> None:
        """The stored limit, set by a reload or by another daemon's controller: go on from it."""
        if self.controller is not None:
            self.controller.adopt(limit)

    def host_saturated(self, reason: str | None) -> bool:
        """The host's own load report (ygg host telemetry): None when it is not saturated."""
        return self.controller is not None and self.controller.host_saturated(reason)

    @property
    def reason(self) -> str:
        return self.controller.reason if self.controller else "slots"


def per_token_s(outcome: Outcome) -> float | None:
    """Seconds per output token while generating; None when the backend did not say."""
    if outcome.generation_s is None or not outcome.tokens_out or outcome.tokens_out < 2:
        return None
    return outcome.generation_s / (outcome.tokens_out - 1)
