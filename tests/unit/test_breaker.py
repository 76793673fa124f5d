"""The circuit breaker's state machine, with time passed in."""

from __future__ import annotations

from ygg.dispatch.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


def test_opens_after_consecutive_failures_only() -> None:
    breaker = Breaker(failures_to_open=3, cooldown_s=10)
    assert not breaker.failed("503", 0.0)
    assert not breaker.failed("503", 1.0)
    assert not breaker.succeeded()  # a success in between resets the count
    assert not breaker.failed("503", 2.0)
    assert not breaker.failed("503", 3.0)
    assert breaker.failed("reset", 4.0)
    assert (breaker.state, breaker.reason, breaker.probe_due_at_s()) == (OPEN, "reset", 14.0)


def test_claims_nothing_while_open_and_one_trial_when_half_open() -> None:
    breaker = Breaker(failures_to_open=1, cooldown_s=5)
    assert breaker.claim_limit(running=0, free_slots=4) == 4
    breaker.failed("down", 0.0)
    assert breaker.claim_limit(running=0, free_slots=4) == 0
    assert breaker.probed(True, 5.0)
    assert breaker.state == HALF_OPEN
    assert breaker.claim_limit(running=0, free_slots=4) == 1
    assert breaker.claim_limit(running=1, free_slots=3) == 0  # the trial is running


def test_failed_probe_restarts_the_cooldown() -> None:
    breaker = Breaker(failures_to_open=1, cooldown_s=5)
    breaker.failed("down", 0.0)
    assert not breaker.probed(False, 5.0)
    assert (breaker.state, breaker.probe_due_at_s()) == (OPEN, 10.0)


def test_trial_outcome_closes_or_reopens() -> None:
    breaker = Breaker(failures_to_open=2, cooldown_s=1)
    breaker.failed("a", 0.0)
    breaker.failed("b", 0.0)
    breaker.probed(True, 1.0)
    assert breaker.failed("still down", 2.0)  # one failed trial is enough to open again
    assert (breaker.state, breaker.opened_at_s) == (OPEN, 2.0)
    breaker.probed(True, 3.0)
    assert breaker.succeeded()
    assert (breaker.state, breaker.reason, breaker.failures) == (CLOSED, None, 0)
