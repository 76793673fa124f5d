"""When a failed attempt may try again: exponential backoff with full jitter."""

from __future__ import annotations

import random

from ygg.config import RetryPolicy


def backoff_s(
    attempt: int,
    policy: RetryPolicy,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Full jitter (uniform over [0, base * 2^(attempt-1)], capped), but never sooner than the
    host asked for with Retry-After."""
    ceiling = min(policy.backoff_max_s, policy.backoff_s * 2 ** max(attempt - 1, 0))
    delay = (rng or random).uniform(0.0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.backoff_max_s * 10))
    return delay
