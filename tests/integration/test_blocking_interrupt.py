"""BlockingBackend.interrupt against a real host: the connection of a request that has not been
answered is cut at once from another thread (a cancel or a shutdown in legacy mode)."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import MakeConfig
from tests.integration.test_backends import RUN_LIMIT_S, http_pool, job
from tests.support.hosts import FakeHost, Protocol, Step
from ygg.backends.blocking import BlockingBackend, Interrupted


def run_in_thread(backend: BlockingBackend) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def target() -> None:
        try:
            backend.run(job(), RUN_LIMIT_S)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, raised


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_interrupt_cuts_a_request_waiting_for_its_answer(
    make_config: MakeConfig, protocol: Protocol
) -> None:
    with FakeHost(protocol) as host:
        host.default = Step(action="hang")
        backend = BlockingBackend(http_pool(make_config, host.url, backend=protocol))
        try:
            thread, raised = run_in_thread(backend)
            assert host.wait_for(lambda h: h.in_flight == 1, timeout_s=5.0)
            backend.interrupt()
            thread.join(2.0)
            assert not thread.is_alive(), "the request ran on after the interrupt"
            assert [type(exc) for exc in raised] == [Interrupted]
            assert host.wait_for(lambda h: h.open_connections == 0, timeout_s=2.0)
            [request] = host.chat_requests
            assert request.status is None
        finally:
            backend.close()


def test_interrupt_before_the_request_is_not_lost(make_config: MakeConfig) -> None:
    with FakeHost("ollama") as host:
        backend = BlockingBackend(http_pool(make_config, host.url))
        try:
            backend.reset()
            backend.interrupt()  # a cancel that came between the claim and the request
            with pytest.raises(Interrupted):
                backend.run(job(), RUN_LIMIT_S)
            assert host.requests == []
            backend.reset()  # the next attempt starts clean, on a new connection
            assert backend.run(job("again"), RUN_LIMIT_S).result == "echo: again"
            assert backend.run(job("and again"), RUN_LIMIT_S).result == "echo: and again"
            assert host.wait_for(lambda h: h.open_connections == 0, timeout_s=2.0)
        finally:
            backend.close()
