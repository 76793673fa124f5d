"""HttpBackend.reconfigure against a real host: a new connection limit takes a new client for
new attempts; the old one closes once its last request is done, not before."""

from __future__ import annotations

import asyncio

import uvloop

from tests.conftest import MakeConfig
from tests.integration.test_backends import http_pool, job
from tests.support.hosts import FakeHost, Step
from ygg.backends.http import HttpBackend


def test_new_limit_new_client_old_one_closed_after_its_requests(make_config: MakeConfig) -> None:
    with FakeHost("ollama") as host:
        pool = http_pool(make_config, host.url)  # slots = 1: two connections
        host.default = Step(delay_s=0.4)

        async def main() -> None:
            backend = HttpBackend(pool)
            old = backend._client.http
            first = asyncio.create_task(backend.run(job("first")))
            assert await asyncio.to_thread(host.wait_for, lambda h: h.in_flight == 1, 5.0)
            backend.reconfigure(pool._replace(slots=4))
            assert backend._client.http is not old and not old.is_closed
            outcomes = await asyncio.gather(*(backend.run(job(f"n{i}")) for i in range(4)))
            assert [o.result for o in outcomes] == [f"echo: n{i}" for i in range(4)]
            assert (await first).result == "echo: first"
            async with asyncio.timeout(2.0):  # the close is scheduled as the last request ends
                while not old.is_closed:
                    await asyncio.sleep(0.01)
            assert not backend._client.http.is_closed
            backend.reconfigure(pool._replace(slots=4, model="same-limit"))
            assert backend.pool.model == "same-limit" and not backend._client.http.is_closed
            await backend.aclose()
            assert backend._client.http.is_closed

        uvloop.run(main())
        # The first request on the old client and the four on the new one, all at once.
        assert host.max_in_flight == 5
