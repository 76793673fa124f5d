"""Cancel and shutdown of a long HTTP request, against a real `ygg loop` in both modes and a real
host on 127.0.0.1 that holds the request open and records connections and concurrency.

The legacy mode used to notice a stop only between chunks of an answer: a request that had not
answered yet ran on after `ygg cancel` or past the drain, holding the host's slot.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.hosts import FakeHost, Step
from ygg.store import open_store

MODES = pytest.mark.parametrize("mode", ["--legacy", "--async"])
CLOSED_WITHIN_S = 2.0  # after a cancel or past the drain, the host sees the connection closed
DRAIN_S = 0.5


def config_for(directory: Path, url: str, daemon: str = "") -> Path:
    pool = (
        f'\n[pools.gpu]\nbackend = "ollama"\nurl = "{url}"\nmodel = "m"\nslots = 1\n'
        'kinds = ["general"]\ntimeout = 60\n'
    )
    return write_config(directory, pool, daemon=f"drain_seconds = {DRAIN_S}\n{daemon}")


def submit(config: Path) -> int:
    answer = run_ygg(config, "submit", "long", "--kind", "general", "--prompt", "hello")
    assert answer.returncode == 0, answer.stderr
    return int(answer.stdout)


def events(daemons: DaemonSet) -> list[str]:
    lines = [line for process in daemons.started for line in daemons.log_of(process).splitlines()]
    return [json.loads(line)["event"] for line in lines if line.startswith("{")]


@MODES
def test_cancel_closes_the_request_and_the_slot_holds(tmp_path: Path, mode: str) -> None:
    """Two daemons share a 1-slot pool; the task is cancelled mid-request and retried at once,
    so the other daemon may take it while the first request would still be running."""
    with FakeHost("ollama") as host:
        host.script(Step(action="hang"))
        host.default = Step(delay_s=0.3)
        config = config_for(tmp_path, host.url, daemon="poll_seconds = 0.2")
        task = submit(config)
        store = open_store(str(tmp_path / "queue.db"))
        with DaemonSet(config) as daemons:
            first, second = daemons.start(mode), daemons.start(mode)
            assert host.wait_for(lambda h: h.in_flight == 1, timeout_s=15)
            cancelled = run_ygg(config, "cancel", str(task))
            cancelled_at = time.monotonic()
            assert cancelled.returncode == 0, cancelled.stderr
            assert run_ygg(config, "retry", str(task)).returncode == 0
            held = host.chat_requests[0]
            closed = host.wait_for(
                lambda h: held.end is not None,
                timeout_s=max(cancelled_at + CLOSED_WITHIN_S - time.monotonic(), 0.0),
            )
            assert closed, "the cancelled request was still open at the host"
            assert wait_until(lambda: store.get(task).status == "done", 15)
            assert (daemons.stop(first), daemons.stop(second)) == (0, 0)
        assert held.status is None  # no answer was ever sent for it
        assert host.max_in_flight == 1, "two requests at once on a 1-slot pool"
        assert host.chat_count == 2
        assert (store.get(task).attempts, store.get(task).result) == (1, "echo: hello")
        # The owner stops the attempt on the cancel nudge, once the store says `cancelled`; when
        # the retry has already requeued the task by then (a loaded machine), the lease keeper
        # stops it instead, seeing the row taken: either way the attempt was stopped.
        assert {"task_cancelled", "lease_lost"} & set(events(daemons))


@MODES
def test_sigterm_past_the_drain_requeues_uncharged(tmp_path: Path, mode: str) -> None:
    with FakeHost("ollama") as host:
        host.default = Step(action="hang")
        config = config_for(tmp_path, host.url)
        task = submit(config)
        store = open_store(str(tmp_path / "queue.db"))
        with DaemonSet(config) as daemons:
            daemon = daemons.start(mode)
            assert host.wait_for(lambda h: h.in_flight == 1, timeout_s=15)
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(DRAIN_S + CLOSED_WITHIN_S + 2.0)
            except subprocess.TimeoutExpired:
                pytest.fail("the daemon did not stop in time after SIGTERM")
            assert code == 0, daemons.log_of(daemon)[-2000:]
        assert host.wait_for(lambda h: h.open_connections == 0, timeout_s=CLOSED_WITHIN_S)
        final = store.get(task)
        assert (final.status, final.attempts) == ("queued", 0), final.error
        assert "task_interrupted" in events(daemons)
