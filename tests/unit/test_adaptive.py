"""The adaptive-slots controller on its own, fed synthetic hosts: it climbs to the knee, holds
there (one past it, one request ready at the host, unless that doubles every request's time), backs
off on 503s, timeouts and the host's own saturation report."""

from __future__ import annotations

import pytest

from ygg.dispatch.adaptive import AdaptiveLimit, Tuning

BASE_S = 0.02  # seconds per token at full speed


def per_token(limit: int, knee: int) -> float:
    """A batching host: full speed up to the knee, shared throughput past it."""
    return BASE_S * max(1.0, limit / knee)


def first_token(limit: int, slots: int) -> float:
    """A host with `slots` decoding slots: the extra requests wait a whole request."""
    return 0.1 if limit <= slots else 0.1 + 2.0


def run(controller: AdaptiveLimit, knee: int, completions: int) -> list[int]:
    """Feeds `completions` finished attempts from a knee host; the limit after each."""
    limits = []
    for _ in range(completions):
        controller.succeeded(per_token(controller.limit, knee), 0.1)
        limits.append(controller.limit)
    return limits


@pytest.mark.parametrize("knee", [2, 4, 8, 13])
def test_it_starts_at_the_floor_and_holds_one_past_the_knee(knee: int) -> None:
    controller = AdaptiveLimit(1, 16)
    assert controller.limit == 1
    limits = run(controller, knee, 2000)
    assert max(limits) <= 16 and min(limits) >= 1
    tail = limits[1000:]
    assert set(tail) == {knee, knee + 1}  # moves by at most one around the knee
    assert tail.count(knee + 1) > 0.75 * len(tail)  # mostly one past it; a window lower now
    # and then re-measures the unloaded time per token


@pytest.mark.parametrize("knee", [1])
def test_on_a_knee_of_one_it_sits_at_the_knee_and_seldom_probes_past_it(knee: int) -> None:
    controller = AdaptiveLimit(1, 16)
    limits = run(controller, knee, 6000)
    tail = limits[1000:]
    assert set(tail) == {knee, knee + 1}
    assert tail.count(knee) > 0.9 * len(tail)
    assert 0 < limits[-2000:].count(knee + 1) < 0.03 * 2000


def test_it_holds_steady_on_a_host_without_a_knee_at_its_ceiling() -> None:
    controller = AdaptiveLimit(2, 6)
    limits = run(controller, knee=100, completions=200)
    assert limits[0] == 2 and set(limits[100:]) == {6}


def test_a_host_that_becomes_slower_is_learnt_not_taken_for_a_queue() -> None:
    controller = AdaptiveLimit(1, 16)
    run(controller, 4, 500)
    slower = []
    for _ in range(3000):  # every token now takes twice as long, whatever the load
        controller.succeeded(2 * per_token(controller.limit, 4), 0.1)
        slower.append(controller.limit)
    assert set(slower[-1000:]) == {4, 5}
    assert slower[-1000:].count(5) > 750  # one past the knee, as before


def test_a_503_drops_below_what_was_running_and_is_not_retried_at_once() -> None:
    controller = AdaptiveLimit(1, 16)
    run(controller, 100, 80)  # no knee: slow start climbs
    assert controller.limit > 6
    assert controller.overloaded(running=6, reason="HTTP 503")
    assert controller.limit == 5 and controller.reason == "HTTP 503"
    limits = run(controller, 100, 30)
    assert max(limits) == 5  # 6 proved too many: held for a while, not probed at once
    limits = run(controller, 100, 2000)
    assert max(limits) == 16  # it does come back once the host takes more


def test_a_host_that_answers_503_past_its_capacity_settles_below_it() -> None:
    capacity, controller = 6, AdaptiveLimit(1, 16)
    limits = []
    for _ in range(1500):
        if controller.limit > capacity:
            controller.overloaded(controller.limit, "HTTP 503")
        else:
            controller.succeeded(BASE_S, 0.1)
        limits.append(controller.limit)
    tail = limits[500:]
    assert set(tail) <= {capacity, capacity + 1} and tail.count(capacity) > 0.95 * len(tail)


def test_a_timeout_backs_off_but_a_limit_never_leaves_its_bounds() -> None:
    controller = AdaptiveLimit(3, 5)
    assert controller.limit == 3
    assert not controller.overloaded(running=3, reason="timed out")  # already at the floor
    assert controller.limit == 3
    run(controller, 100, 100)
    assert controller.limit == 5


def test_the_hosts_saturation_report_backs_off_once_per_window() -> None:
    controller = AdaptiveLimit(1, 16)
    run(controller, 100, 200)
    at = controller.limit
    assert controller.host_saturated("vLLM: 3 requests waiting")
    assert not controller.host_saturated("vLLM: 3 requests waiting")  # same window
    assert not controller.host_saturated(None)
    assert controller.limit == at - 1 and controller.reason.startswith("host: ")


def test_a_late_first_token_means_the_host_queues() -> None:
    """llama-server with 3 slots: the time per token stays flat, the first token comes late."""
    controller = AdaptiveLimit(1, 16)
    limits = []
    for _ in range(600):
        controller.succeeded(BASE_S, first_token(controller.limit, 3))
        limits.append(controller.limit)
    assert set(limits[300:]) <= {3, 4} and limits[300:].count(3) > 0.9 * 300


def test_a_host_without_timings_gets_aimd_on_its_errors() -> None:
    controller = AdaptiveLimit(1, 16)
    limits = []
    for _ in range(400):  # no time per token: successes grow it, 503s past 5 cut it
        if controller.limit > 5:
            controller.overloaded(controller.limit, "HTTP 503")
        else:
            controller.succeeded(None if len(limits) % 2 else float("nan"), None)
        limits.append(controller.limit)
    assert limits[0] == 1 and max(limits) == 8  # slow start doubles: 1, 2, 4, 8
    assert set(limits[200:]) <= {5, 6} and limits[200:].count(5) > 0.9 * 200


def test_decisions_wait_for_a_window_of_completions() -> None:
    controller = AdaptiveLimit(1, 16, Tuning(window=5))
    # slow start: two completions at a limit of 1, then the one running at the change is
    # skipped and two more (half the new limit, at least two) decide
    assert [controller.succeeded(BASE_S) for _ in range(2)] == [False, True]
    assert controller.limit == 2
    assert [controller.succeeded(BASE_S) for _ in range(3)] == [False, False, True]
    assert controller.limit == 4
    controller.overloaded(running=4, reason="HTTP 503")  # slow start ends
    assert controller.limit == 3
    # now: skip the 4 that ran under the old limit, then a window of max(5, 3)
    moved = [controller.succeeded(BASE_S) for _ in range(4 + 5)]
    assert not any(moved) and controller.limit == 3  # room, once: not enough to grow
    moved = [controller.succeeded(BASE_S) for _ in range(5)]
    assert moved == [False] * 4 + [False]  # 4 is held after the 503


def test_bounds_are_checked_and_a_reload_keeps_the_limit_inside_new_ones() -> None:
    with pytest.raises(ValueError, match="min_limit"):
        AdaptiveLimit(0, 4)
    with pytest.raises(ValueError, match="min_limit"):
        AdaptiveLimit(5, 4)
    controller = AdaptiveLimit(1, 16)
    run(controller, 100, 200)
    controller.rebound(2, 8)
    assert controller.limit == 8
    controller.rebound(10, 12)
    assert controller.limit == 10


def test_adopting_the_shared_limit_moves_it_and_rereading_it_keeps_the_window() -> None:
    """Daemons re-read the stored limit on every poll: the value they already hold must not
    throw away the measurements of the window under way, or no decision would ever come."""
    controller = AdaptiveLimit(1, 16)
    controller.adopt(4)
    assert (controller.limit, controller.reason) == (4, "shared")
    for _ in range(controller._window.skip):  # those that started under the old limit...
        controller.succeeded(0.02, 0.1)
    controller.succeeded(0.02, 0.1)  # ...this one is measured
    window = controller._window
    assert window.per_token_s == [0.02]
    controller.adopt(4)
    assert controller._window is window and window.per_token_s == [0.02]
    controller.adopt(40)  # past the ceiling: the ceiling, which it does not hold
    assert controller.limit == 16 and controller._window is not window
