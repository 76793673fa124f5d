"""A store out of reach: the backoff between tries, what /healthz says, the watchdog's
progress, and the reaper's grace after the store comes back."""

from __future__ import annotations

from ygg.dispatch.leases import spare_after_outage
from ygg.errors import StoreConnectionLost, StoreFull
from ygg.store.model import Daemon
from ygg.store.outage import FIRST_RETRY_S, JITTER, MAX_RETRY_S, Outage, retry_delay_s


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_backoff_doubles_up_to_its_cap_within_its_jitter() -> None:
    for rng in (lambda: 0.0, lambda: 0.5, lambda: 0.999):
        delays = [retry_delay_s(attempt, rng) for attempt in range(1, 12)]
        assert delays == sorted(delays)
        assert delays[-1] <= MAX_RETRY_S * (1 + JITTER)
    assert retry_delay_s(1, lambda: 0.5) == FIRST_RETRY_S
    assert retry_delay_s(2, lambda: 0.5) == 2 * FIRST_RETRY_S
    assert retry_delay_s(30, lambda: 0.5) == MAX_RETRY_S
    assert retry_delay_s(1, lambda: 0.0) == FIRST_RETRY_S * (1 - JITTER)
    assert retry_delay_s(1, lambda: 1.0) == FIRST_RETRY_S * (1 + JITTER)


def test_an_outage_is_described_until_a_try_succeeds() -> None:
    clock = Clock()
    outage = Outage(clock)
    assert outage.describe() is None and outage.settled(5.0)
    delay_s = outage.failed(StoreConnectionLost("Cannot reach the database db1: refused."), 1)
    assert 0 < delay_s <= FIRST_RETRY_S * (1 + JITTER)
    clock.now += 12
    outage.failed(StoreFull("db1: the disk is full."), 2)  # the latest reason is the one told
    assert outage.describe() == "store unavailable for 12 s, retrying: db1: the disk is full."
    assert not outage.settled(0.0)
    outage.recovered()
    assert outage.describe() is None
    assert not outage.settled(5.0)  # just back
    clock.now += 5
    assert outage.settled(5.0)


def test_a_waited_out_outage_counts_as_progress_every_second() -> None:
    clock = Clock()
    outage = Outage(clock)
    seen = {outage.progress()}
    outage.failed(StoreConnectionLost("down"), 1)
    for _ in range(5):
        clock.now += 1.0
        seen.add(outage.progress())
    assert len(seen) == 6  # moved at every second, with no try in between
    frozen = outage.progress()
    outage.recovered()
    assert outage.progress() != frozen
    clock.now += 30
    assert outage.progress() == outage.progress()  # healthy: the reaper's beats speak


def test_the_reaper_spares_every_live_registration_just_after_an_outage() -> None:
    clock = Clock()
    outage = Outage(clock)
    daemons = [Daemon(n, f"box{n}", 100 + n, 0, f"@n{n}", "async", 0) for n in (1, 2, 3)]
    alive, dead = {1}, [3]  # 2: on another machine, judged by its lease alone
    assert spare_after_outage(alive, dead, daemons, outage, lease_s=30) == {1}
    outage.failed(StoreConnectionLost("down"), 1)
    clock.now += 60
    outage.recovered()
    assert spare_after_outage(alive, dead, daemons, outage, lease_s=30) == {1, 2}
    clock.now += 30 + MAX_RETRY_S * (1 + JITTER)
    assert spare_after_outage(alive, dead, daemons, outage, lease_s=30) == {1}
