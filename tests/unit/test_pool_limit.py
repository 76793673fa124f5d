"""What a pool may run at once: its slots, or its adaptive limit, fed from attempts' outcomes
and failures, and kept across a reload."""

from __future__ import annotations

import pytest

from tests.conftest import MakeConfig
from ygg.backends.base import AttemptFailed
from ygg.dispatch.pool_limit import AdaptiveSlots, per_token_s
from ygg.errors import ConfigError
from ygg.store.model import Outcome

PLAIN = '[pools.p]\nbackend = "sim"\nkinds = ["k"]\nslots = 6\n'
ADAPTIVE = PLAIN + "adaptive = true\nmin_slots = 2\n"


def test_a_plain_pool_runs_its_slots_and_learns_nothing(make_config: MakeConfig) -> None:
    limit = AdaptiveSlots(make_config(PLAIN).pools["p"])
    assert (limit.value, limit.reason) == (6, "slots")
    overloaded = AttemptFailed("HTTP 503", retryable=True, overloaded=True)
    assert not limit.learn(None, overloaded, 6) and limit.value == 6


def test_an_adaptive_pool_starts_at_min_slots_and_backs_off_on_overload(
    make_config: MakeConfig,
) -> None:
    limit = AdaptiveSlots(make_config(ADAPTIVE).pools["p"])
    assert limit.value == 2
    fast = Outcome("ok", 3, 11, first_token_s=0.1, generation_s=1.0)
    moved = [limit.learn(fast, None, 2) for _ in range(4)]
    assert any(moved) and limit.value > 2  # slow start
    plain_error = AttemptFailed("HTTP 400", retryable=False)
    before = limit.value
    assert not limit.learn(None, plain_error, before) and limit.value == before
    timeout = AttemptFailed("timed out", retryable=True, overloaded=True)
    assert limit.learn(None, timeout, before) and limit.value == before - 1


def test_a_reload_keeps_what_was_learnt_inside_the_new_bounds(make_config: MakeConfig) -> None:
    limit = AdaptiveSlots(make_config(ADAPTIVE).pools["p"])
    limit.reconfigure(make_config(ADAPTIVE.replace("slots = 6", "slots = 9")).pools["p"])
    assert limit.value == 2 and limit.controller is not None
    limit.reconfigure(make_config(ADAPTIVE.replace("min_slots = 2", "min_slots = 3")).pools["p"])
    assert limit.value == 3
    limit.reconfigure(make_config(PLAIN).pools["p"])
    assert limit.value == 6 and limit.controller is None


def test_time_per_token_needs_two_tokens_and_a_generation_time() -> None:
    assert per_token_s(Outcome("x", 1, 11, generation_s=2.0)) == 0.2
    assert per_token_s(Outcome("x", 1, 1, generation_s=2.0)) is None
    assert per_token_s(Outcome("x", 1, 11)) is None


def test_min_slots_above_slots_is_refused(make_config: MakeConfig) -> None:
    with pytest.raises(ConfigError, match="min_slots"):
        make_config(PLAIN + "adaptive = true\nmin_slots = 7\n")
    with pytest.raises(ConfigError, match="true or false"):
        make_config(PLAIN + 'adaptive = "yes"\n')
