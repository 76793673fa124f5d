"""Circuit breakers end to end: the async Dispatcher, a real SQLite file, FakeHost on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import uvloop

from tests.conftest import MakeConfig
from tests.support.hosts import FakeHost, Step
from ygg import api
from ygg.config import Config
from ygg.dispatch.dispatcher import Dispatcher
from ygg.store import Store, open_store
from ygg.store.model import BreakerState

LIMIT_S = 15.0


@pytest.fixture
def ollama() -> Iterator[FakeHost]:
    with FakeHost("ollama") as host:
        yield host


def gpu_pool(url: str, *, extra: str = "") -> str:
    return f"""
[pools.gpu]
backend = "ollama"
url = "{url}"
model = "m"
slots = 1
kinds = ["general"]
{extra}
"""


def submit_many(store: Store, config: Config, n: int, **fields: object) -> list[int]:
    return [
        api.submit(store, api.new_task(config, title=f"t{i}", kind="general", **fields)).id  # type: ignore[arg-type]
        for i in range(n)
    ]


def run_while(config: Config, keep_going: Callable[[Dispatcher], bool]) -> Dispatcher:
    """Runs a Dispatcher until `keep_going` turns false (checked every 20 ms), then stops it."""
    dispatcher = Dispatcher(config)

    async def main() -> None:
        running = asyncio.create_task(dispatcher.run())
        async with asyncio.timeout(LIMIT_S):
            while keep_going(dispatcher) and not running.done():
                await asyncio.sleep(0.02)
        dispatcher.request_stop()
        async with asyncio.timeout(5.0):
            await running

    uvloop.run(main())
    return dispatcher


def test_open_breaker_stops_claiming_and_keeps_tasks_queued(
    make_config: MakeConfig, ollama: FakeHost
) -> None:
    ollama.default = Step(status=503)
    config = make_config(
        gpu_pool(ollama.url, extra="breaker_failures = 2\nbreaker_cooldown_seconds = 60"),
        defaults="backoff_seconds = 0\nmax_attempts = 10",
    )
    store = open_store(config.daemon.db)
    ids = submit_many(store, config, 4)
    seen: list[BreakerState] = []  # read while the daemon runs: its rows go when it stops

    def not_open_yet(_: Dispatcher) -> bool:
        seen[:] = store.breakers()
        return not seen or seen[0].state != "open"

    run_while(config, not_open_yet)
    assert ollama.chat_count == 2  # nothing was sent after the breaker opened
    assert {store.get(i).status for i in ids} == {"queued"}
    [state] = seen
    assert (state.pool, state.state) == ("gpu", "open")
    assert "HTTP 503" in (state.reason or "")


def test_fallback_pool_takes_the_kinds_of_an_open_breaker(make_config: MakeConfig) -> None:
    # Port 9 on loopback: nothing listens, so every request is refused at once.
    config = make_config(
        gpu_pool("http://127.0.0.1:9", extra='breaker_failures = 1\nfallback = ["spare"]')
        + '\n[pools.spare]\nbackend = "sim"\nseconds = 0\nslots = 2\nkinds = []\n',
        defaults="backoff_seconds = 0",
    )
    store = open_store(config.daemon.db)
    ids = submit_many(store, config, 5)
    run_while(config, lambda d: any(store.get(i).status != "done" for i in ids))
    tasks = [store.get(i) for i in ids]
    assert {t.status for t in tasks} == {"done"}
    assert {t.pool for t in tasks} == {"spare"}
    assert all(t.attempts == 1 for t in tasks)  # the refused attempt was not charged


def test_probe_half_opens_and_a_good_trial_closes(
    make_config: MakeConfig, ollama: FakeHost
) -> None:
    ollama.script(Step(status=503), Step(status=503))  # then the default: 200
    config = make_config(
        gpu_pool(ollama.url, extra="breaker_failures = 2\nbreaker_cooldown_seconds = 0.3"),
        defaults="backoff_seconds = 0\nmax_attempts = 5",
    )
    store = open_store(config.daemon.db)
    ids = submit_many(store, config, 3)
    dispatcher = run_while(config, lambda d: any(store.get(i).status != "done" for i in ids))
    assert [r.status for r in ollama.chat_requests] == [503, 503, 200, 200, 200]
    assert any(r.path == "/api/version" for r in ollama.requests)  # the health probe
    breaker = dispatcher.runners["gpu"].breaker
    assert (breaker.state, breaker.reason) == ("closed", None)
    assert [store.get(i).attempts for i in ids] == [3, 1, 1]
