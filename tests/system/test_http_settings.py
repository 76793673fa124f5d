"""Per-attempt HTTP settings against a real `ygg loop` and a real host on 127.0.0.1: a task's own
timeout beats the pool's, and a reload that raises slots gets the connections to match.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.hosts import FakeHost, Step
from ygg.store import open_store

MODES = pytest.mark.parametrize("mode", ["--async", "--legacy"])


def ollama_pool(url: str, *, slots: int, timeout_s: float) -> str:
    return (
        f'\n[pools.gpu]\nbackend = "ollama"\nurl = "{url}"\nmodel = "m"\nslots = {slots}\n'
        f'kinds = ["general"]\ntimeout = {timeout_s}\n'
    )


def submit(config: Path, title: str, *args: str) -> int:
    answer = run_ygg(config, "submit", title, "--kind", "general", *args)
    assert answer.returncode == 0, answer.stderr
    return int(answer.stdout)


@MODES
def test_task_timeout_beats_the_pools(tmp_path: Path, mode: str) -> None:
    """`--timeout 5` on a pool with `timeout = 1`: a host answering after 2 s is in time."""
    with FakeHost("ollama") as host:
        host.default = Step(delay_s=2.0)
        config = write_config(
            tmp_path, ollama_pool(host.url, slots=1, timeout_s=1), defaults="max_attempts = 1"
        )
        task = submit(config, "patient", "--prompt", "hello", "--timeout", "5")
        store = open_store(str(tmp_path / "queue.db"))
        with DaemonSet(config) as daemons:
            daemon = daemons.start(mode)
            assert wait_until(lambda: store.get(task).status not in ("queued", "running"), 15)
            assert daemons.stop(daemon) == 0
        final = store.get(task)
        assert (final.status, final.attempts, final.result) == ("done", 1, "echo: hello"), (
            final.error
        )
        assert host.chat_count == 1


def test_reload_raising_slots_gets_the_connections_too(tmp_path: Path) -> None:
    """Slots 1 → 4 while a request runs: four requests at once at the host, none timed out."""
    with FakeHost("ollama") as host:
        config = write_config(tmp_path, ollama_pool(host.url, slots=1, timeout_s=3))
        ids = [submit(config, f"t{i}", "--prompt", "hello sleep=1.8") for i in range(8)]
        store = open_store(str(tmp_path / "queue.db"))
        with DaemonSet(config) as daemons:
            daemon = daemons.start("--async")
            assert host.wait_for(lambda h: h.in_flight == 1, timeout_s=10)
            assert run_ygg(config, "config", "set", "pools.gpu.slots", "4").returncode == 0
            daemon.send_signal(signal.SIGHUP)
            assert host.wait_for(lambda h: h.in_flight == 4, timeout_s=5), host.max_in_flight
            assert wait_until(lambda: all(store.get(i).status == "done" for i in ids), 20)
            assert daemons.stop(daemon) == 0
        log = daemons.log_of(daemon)
    assert host.max_in_flight == 4
    assert [store.get(i).attempts for i in ids] == [1] * 8, "an attempt timed out and ran again"
    assert host.chat_count == 8
    events = [json.loads(line)["event"] for line in log.splitlines()]
    assert "config_reloaded" in events and "http_client_resized" in events
    assert "Traceback" not in log
