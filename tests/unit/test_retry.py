"""Backoff: exponential ceiling, full jitter, capped, never sooner than Retry-After."""

from __future__ import annotations

import random

from ygg.backends.protocols import retry_after_s
from ygg.config import RetryPolicy
from ygg.dispatch.retry import backoff_s

POLICY = RetryPolicy(backoff_s=1.0, backoff_max_s=8.0)


def test_full_jitter_stays_under_a_doubling_capped_ceiling() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [backoff_s(attempt, POLICY, rng=rng) for _ in range(500)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter spreads over the whole range, not just near the ceiling
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_retry_after_is_a_floor() -> None:
    rng = random.Random(1)
    assert all(backoff_s(1, POLICY, retry_after_s=5.0, rng=rng) >= 5.0 for _ in range(100))


def test_zero_backoff_retries_at_once() -> None:
    assert backoff_s(3, RetryPolicy(backoff_s=0.0)) == 0.0


def test_retry_after_header_forms() -> None:
    assert retry_after_s("7") == 7.0
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
