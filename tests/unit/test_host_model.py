"""The sim backend's host model: batched decoding up to a knee, shared throughput past it,
and past capacity a 503 or a spill to the CPU."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.conftest import MakeConfig
from ygg.backends.base import AttemptFailed, Job
from ygg.backends.host_model import SPILL_SLOWDOWN, HostModel, host_model
from ygg.backends.sim import SimBackend
from ygg.store.model import Outcome


def test_full_speed_up_to_the_knee_then_shared_throughput() -> None:
    host = HostModel(knee=4)
    assert [host.rate(n) for n in (1, 2, 4)] == [1.0, 1.0, 1.0]
    assert host.rate(8) == 0.5  # 8 requests share the throughput of 4
    assert [n * host.rate(n) for n in (4, 8, 16)] == [4.0, 4.0, 4.0]  # throughput stays flat


def test_past_capacity_a_spill_slows_everything() -> None:
    host = HostModel(knee=2, capacity=4, overload="slow")
    assert host.rate(4) == 0.5
    assert host.rate(5) == pytest.approx((2 / 5) / SPILL_SLOWDOWN)


def test_past_capacity_a_503_refuses_the_extra_request() -> None:
    host = HostModel(knee=2, capacity=2, overload="503")
    host.enter()
    host.enter()
    with pytest.raises(AttemptFailed, match="503") as refused:
        host.enter()
    assert refused.value.retryable and host.running == 2
    host.leave()
    host.enter()  # room again
    assert host.peak == 2


def test_a_step_does_the_work_of_its_rate() -> None:
    host = HostModel(knee=1)
    host.running = 4
    sleep_s, done = host.step_s(1.0)
    assert done == pytest.approx(sleep_s * 0.25)
    host.running = 1
    assert host.step_s(0.001) == (pytest.approx(0.001), pytest.approx(0.001))  # never overshoots


def test_no_model_unless_asked(make_config: MakeConfig) -> None:
    plain = make_config('[pools.s]\nbackend = "sim"\nkinds = ["k"]\n').pools["s"]
    assert host_model(plain) is None
    modelled = make_config(
        '[pools.s]\nbackend = "sim"\nkinds = ["k"]\nsim_knee = 2\nsim_capacity = 3\n'
        'sim_overload = "503"\n'
    ).pools["s"]
    model = host_model(modelled)
    assert model is not None and (model.knee, model.capacity, model.overload) == (2, 3, "503")


def job(n: int) -> Job:
    return Job(n, 1, "k", 2, f"t{n}", "", {"seconds": "0.05"})


def test_the_sim_backend_runs_requests_side_by_side_on_its_host(make_config: MakeConfig) -> None:
    pool = make_config(
        '[pools.s]\nbackend = "sim"\nkinds = ["k"]\nsim_knee = 2\nsim_capacity = 3\n'
        'sim_overload = "503"\n'
    ).pools["s"]
    backend = SimBackend(pool)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(backend.run(job(n)) for n in range(4)), return_exceptions=True
        )

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, AttemptFailed)]
    assert len(refused) == 1 and "503" in str(refused[0])  # the fourth is past capacity
    assert backend.host is not None and (backend.host.peak, backend.host.running) == (3, 0)


def test_the_blocking_model_stops_when_told() -> None:
    host = HostModel(knee=1)
    stop = threading.Event()
    stop.set()
    assert not host.serve_blocking(10.0, stop, time.monotonic() + 60)
    assert host.running == 0


def test_the_sim_backend_reports_its_hosts_timings(make_config: MakeConfig) -> None:
    """Alone, a request runs at full speed; beside another on a knee of 1, at half speed: its
    first token and its generation take twice as long (the model's times, not the clock's)."""
    pool = make_config('[pools.s]\nbackend = "sim"\nkinds = ["k"]\nsim_knee = 1\n').pools["s"]
    backend = SimBackend(pool)
    tokens = 31  # the first after 10 tokens' time (the prompt), then 30 more
    answer = Job(1, 1, "k", 2, "t", "", {"seconds": "0.08", "tokens": str(tokens)})

    async def alone_then_together() -> tuple[object, list[object]]:
        alone = await backend.run(answer)
        together = await asyncio.gather(backend.run(answer), backend.run(answer))
        return alone, list(together)

    alone, together = asyncio.run(alone_then_together())
    assert isinstance(alone, Outcome) and alone.tokens_out == tokens
    assert alone.first_token_s == pytest.approx(0.08 * 10 / 40, rel=1e-6)
    assert alone.generation_s == pytest.approx(0.08 * 30 / 40, rel=1e-6)
    for outcome in together:
        assert isinstance(outcome, Outcome)
        # twice as long, less what either ran alone before the other came (a busy machine
        # may start the second a little late)
        assert 1.5 * alone.generation_s < outcome.generation_s <= 2.0001 * alone.generation_s
        assert outcome.first_token_s <= 2.0001 * alone.first_token_s


def test_without_a_host_model_the_timings_follow_the_sleep(make_config: MakeConfig) -> None:
    backend = SimBackend(make_config('[pools.s]\nbackend = "sim"\nkinds = ["k"]\n').pools["s"])
    outcome = asyncio.run(backend.run(Job(1, 1, "k", 2, "t", "", {"seconds": "0", "tokens": "5"})))
    assert (outcome.tokens_out, outcome.first_token_s, outcome.generation_s) == (5, 0.0, 0.0)
    with pytest.raises(AttemptFailed, match="tokens"):
        asyncio.run(backend.run(Job(1, 1, "k", 2, "t", "", {"tokens": "many"})))
