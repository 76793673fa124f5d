"""A misbehaving host against the real `ygg loop`: error statuses, resets, hangs, trickles.

One daemon per mode runs every scenario at once: each scenario has its own FakeHost (HTTP on
127.0.0.1), its own one-slot pool and kind, and one task. The outcome of each is then checked
from the queue and from what the host saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, write_config
from tests.support.encodings import zeros_gzip
from tests.support.hosts import FakeHost, Protocol, Step
from ygg import api
from ygg.config import load
from ygg.store import Task, open_store


@dataclass(frozen=True)
class Scenario:
    protocol: Protocol
    steps: tuple[Step, ...]  # scripted first, then `default` for every later request
    default: Step
    status: str  # the task's final status
    attempts: int  # ... its attempts, and the chat requests the host saw
    error: str | None = None  # a fragment of the task's error ("" = any)
    pool: str = ""  # extra pool settings
    min_gap_s: float = 0.0  # requests at least this far apart (Retry-After honoured)


OK = Step()
SCENARIOS: dict[str, Scenario] = {
    "500-forever": Scenario("ollama", (), Step(status=500), "failed", 3, "500"),
    "503-twice-then-ok": Scenario("ollama", (Step(status=503), Step(status=503)), OK, "done", 3),
    "429-retry-after": Scenario(
        "openai",
        (),
        Step(status=429, retry_after="1"),
        "failed",
        2,
        "429",
        "max_attempts = 2",
        min_gap_s=0.9,
    ),
    "503-retry-after-then-ok": Scenario(
        "openai", (Step(status=503, retry_after="1"),), OK, "done", 2, min_gap_s=0.9
    ),
    "400-at-once": Scenario("ollama", (), Step(status=400), "failed", 1, "400"),
    "400-openai-at-once": Scenario("openai", (), Step(status=400), "failed", 1, "400"),
    "reset-then-ok": Scenario("ollama", (Step(action="reset"),), OK, "done", 2),
    "reset-forever": Scenario("openai", (), Step(action="reset"), "failed", 3, ""),
    "hang-then-ok": Scenario("ollama", (Step(action="hang"),), OK, "done", 2, pool="timeout = 1"),
    "hang-forever": Scenario(
        "ollama",
        (),
        Step(action="hang"),
        "failed",
        2,
        "timed out",
        "timeout = 0.5\nmax_attempts = 2",
    ),
    "trickle-past-timeout": Scenario(
        "ollama",
        (),
        Step(action="trickle", delay_s=0.05),
        "failed",
        2,
        "timed out",
        "timeout = 0.6\nmax_attempts = 2",
    ),
    "invalid-json": Scenario("ollama", (), Step(body=b"{not json"), "failed", 1, "invalid JSON"),
    "invalid-json-openai": Scenario(
        "openai", (), Step(body=b"<html>bad gateway</html>"), "failed", 1, "invalid JSON"
    ),
    "gzip-answer": Scenario("openai", (), Step(encoding="gzip"), "done", 1),
    "deflate-answer": Scenario("ollama", (), Step(encoding="deflate"), "done", 1),
    "gzip-bomb": Scenario(
        "ollama",
        (),
        Step(body=zeros_gzip(1024), headers=(("Content-Encoding", "gzip"),)),
        "failed",
        1,
        "once decoded (gzip)",
    ),
}
MODES = ["--async", "--legacy"]


@dataclass
class Observed:
    task: Task
    chat_starts: list[float]
    exit_code: int
    daemon_log: str


def pool_toml(name: str, scenario: Scenario, url: str) -> str:
    key = 'api_key_env = "YGG_FAULT_KEY"\n' if scenario.protocol == "openai" else ""
    return (
        f'\n[pools.{name}]\nbackend = "{scenario.protocol}"\nurl = "{url}"\nmodel = "m"\n'
        f'slots = 1\nkinds = ["{name}"]\n{key}{scenario.pool}\n'
    )


def run_scenarios(directory: Path, mode: str) -> dict[str, Observed]:
    hosts = {
        name: FakeHost(s.protocol, api_key="k" if s.protocol == "openai" else None)
        for name, s in SCENARIOS.items()
    }
    try:
        for name, host in hosts.items():
            host.start()
            host.script(*SCENARIOS[name].steps)
            host.default = SCENARIOS[name].default
        pools = "".join(pool_toml(n, s, hosts[n].url) for n, s in SCENARIOS.items())
        path = write_config(
            directory, pools, daemon="poll_seconds = 0.2", defaults="max_attempts = 3\ntimeout = 20"
        )
        config = load(str(path))
        store = open_store(config.daemon.db)
        ids = {
            name: api.submit(
                store, api.new_task(config, title=name, kind=name, prompt=f"hello {name}")
            ).id
            for name in SCENARIOS
        }
        with DaemonSet(path, env={"YGG_FAULT_KEY": "k"}) as daemons:
            process = daemons.start(mode, "--until-idle")
            code = process.wait(90)
            log = daemons.log_of(process)
        return {
            name: Observed(
                store.get(ids[name]), [r.start for r in hosts[name].chat_requests], code, log
            )
            for name in SCENARIOS
        }
    finally:
        for host in hosts.values():
            host.stop()


@pytest.fixture(scope="module", params=MODES)
def observed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Observed]:
    return run_scenarios(tmp_path_factory.mktemp("hostfaults"), request.param)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_host_fault_outcome(observed: dict[str, Observed], name: str) -> None:
    scenario, seen = SCENARIOS[name], observed[name]
    task = seen.task
    assert seen.exit_code == 0, seen.daemon_log[-2000:]
    assert (task.status, task.attempts) == (scenario.status, scenario.attempts), task.error
    assert len(seen.chat_starts) == scenario.attempts, "requests seen by the host"
    if scenario.status == "done":
        assert task.result == f"echo: hello {name}" and task.error is None
    else:
        assert task.error is not None and (scenario.error or "") in task.error
        assert "Traceback" not in task.error
    gaps = [b - a for a, b in zip(seen.chat_starts, seen.chat_starts[1:], strict=False)]
    assert all(gap >= scenario.min_gap_s for gap in gaps), f"Retry-After ignored: {gaps}"


def test_daemon_log_has_no_traceback(observed: dict[str, Observed]) -> None:
    log = next(iter(observed.values())).daemon_log
    assert "Traceback" not in log, log[-3000:]
