"""The HTTP and command backends against real fake hosts: directly (async and blocking form)
and end to end through the async Dispatcher and the LegacyDispatcher, on a real SQLite file.

Every network call goes to 127.0.0.1 and is bounded; every host and process is stopped.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import uvloop

from tests.conftest import MakeConfig
from tests.support.cmdlog import Run, cmd_argv, read_cmd_log
from tests.support.hosts import FakeHost, Step
from ygg import api
from ygg.backends import AttemptFailed, Job, make_backend
from ygg.backends.base import MAX_RESPONSE_BYTES
from ygg.backends.blocking import BlockingBackend, Interrupted
from ygg.config import Config, PoolConfig
from ygg.dispatch.dispatcher import Dispatcher
from ygg.dispatch.legacy import LegacyDispatcher
from ygg.errors import ConfigError
from ygg.store import Store, Task, open_store
from ygg.store.model import Outcome

Mode = Literal["async", "blocking"]
MODES = pytest.mark.parametrize("mode", ["async", "blocking"])
DISPATCHERS = pytest.mark.parametrize("legacy", [False, True], ids=["async", "legacy"])
RUN_LIMIT_S = 10.0  # the most any single direct attempt may take in these tests
DISPATCH_LIMIT_S = 15.0  # the most any dispatcher run may take


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def ollama() -> Iterator[FakeHost]:
    with FakeHost("ollama") as host:
        yield host


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def http_pool(
    make_config: MakeConfig, url: str, *, backend: str = "ollama", extra: str = ""
) -> PoolConfig:
    config = make_config(f"""
[pools.gpu]
backend = "{backend}"
url = "{url}"
model = "pool-model"
slots = 1
kinds = ["general"]
timeout = {RUN_LIMIT_S}
{extra}
""")
    return config.pools["gpu"]


def command_pool(make_config: MakeConfig, argv: list[str]) -> PoolConfig:
    config = make_config(f"""
[pools.cmd]
backend = "command"
argv = {json.dumps(argv)}
slots = 1
kinds = ["general"]
timeout = {RUN_LIMIT_S}
""")
    return config.pools["cmd"]


def job(prompt: str = "hello big world", **params: str) -> Job:
    return Job(7, 1, "general", 2, "a title", prompt, dict(params))


def run_job(pool: PoolConfig, the_job: Job, mode: Mode, timeout_s: float = RUN_LIMIT_S) -> Outcome:
    """One attempt through the async backend (under uvloop) or its blocking form."""
    if mode == "blocking":
        blocking = BlockingBackend(pool)
        try:
            return blocking.run(the_job, timeout_s)
        finally:
            blocking.close()

    async def main() -> Outcome:
        backend = make_backend(pool)
        try:
            async with asyncio.timeout(timeout_s):
                return await backend.run(the_job)
        finally:
            await backend.aclose()

    return uvloop.run(main())


def failure_of(
    pool: PoolConfig, the_job: Job, mode: Mode, timeout_s: float = RUN_LIMIT_S
) -> AttemptFailed:
    with pytest.raises(AttemptFailed) as info:
        run_job(pool, the_job, mode, timeout_s)
    return info.value


def health(pool: PoolConfig) -> bool:
    async def main() -> bool:
        backend = make_backend(pool)
        try:
            async with asyncio.timeout(RUN_LIMIT_S):
                return await backend.health()
        finally:
            await backend.aclose()

    return uvloop.run(main())


def pid_alive(pid: int) -> bool:
    """False once the process is gone or a zombie (a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def assert_gone(*pids: int, within_s: float = 2.0) -> None:
    deadline = time.monotonic() + within_s
    while any(pid_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if pid_alive(p)]}"
        time.sleep(0.02)


def run_with_child(log: Path, timeout_s: float = 5.0) -> Run:
    """Waits (blocking) until cmd_host.py has logged its grandchild."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = read_cmd_log(log)
        if runs and runs[0].child_pids:
            return runs[0]
        assert time.monotonic() < deadline, "the command never spawned its child"
        time.sleep(0.02)


async def async_run_with_child(log: Path, timeout_s: float = 5.0) -> Run:
    async with asyncio.timeout(timeout_s):
        while True:
            runs = read_cmd_log(log)
            if runs and runs[0].child_pids:
                return runs[0]
            await asyncio.sleep(0.02)


def e2e_config(make_config: MakeConfig, url: str, *, slots: int = 1, extra: str = "") -> Config:
    return make_config(
        f"""
[pools.gpu]
backend = "ollama"
url = "{url}"
model = "m"
slots = {slots}
kinds = ["general"]
{extra}
""",
        daemon="drain_seconds = 1",
        defaults="backoff_seconds = 0.01\ntimeout = 10",
    )


def submit(store: Store, config: Config, title: str, **fields: Any) -> Task:
    return api.submit(store, api.new_task(config, title=title, kind="general", **fields))


def run_until_idle(config: Config, legacy: bool) -> None:
    if not legacy:

        async def main() -> None:
            async with asyncio.timeout(DISPATCH_LIMIT_S):
                await Dispatcher(config, until_idle=True).run()

        uvloop.run(main())
        return
    dispatcher = LegacyDispatcher(config, until_idle=True)
    run_legacy_for(dispatcher, DISPATCH_LIMIT_S, must_finish=True)


def run_legacy_for(dispatcher: LegacyDispatcher, seconds: float, *, must_finish: bool) -> None:
    """Runs the legacy dispatcher in a thread for at most `seconds`, then stops it."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            dispatcher.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="legacy-under-test", daemon=True)
    thread.start()
    thread.join(seconds)
    finished = not thread.is_alive()
    if not finished:
        dispatcher.request_stop()
        thread.join(10.0)
        assert not thread.is_alive(), "the legacy dispatcher did not stop"
    assert not errors, errors
    if must_finish:
        assert finished, "the legacy dispatcher did not go idle in time"


def run_bounded(config: Config, legacy: bool, seconds: float) -> None:
    """Runs a dispatcher (not until idle) for `seconds`, then asks it to stop."""
    if legacy:
        run_legacy_for(LegacyDispatcher(config), seconds, must_finish=False)
        return

    async def main() -> None:
        dispatcher = Dispatcher(config)
        running = asyncio.create_task(dispatcher.run())
        await asyncio.sleep(seconds)
        dispatcher.request_stop()
        async with asyncio.timeout(5.0):
            await running

    uvloop.run(main())


# --- HTTP backends, directly ----------------------------------------------------------------


@MODES
def test_ollama_request_and_result(make_config: MakeConfig, ollama: FakeHost, mode: Mode) -> None:
    pool = http_pool(make_config, ollama.url)
    outcome = run_job(pool, job("hello big world"), mode)
    assert outcome[:3] == ("echo: hello big world", 3, 4)  # text, tokens in and out
    [request] = ollama.chat_requests
    assert request.method == "POST" and request.path == "/api/chat"
    assert request.body == {
        "model": "pool-model",
        "messages": [{"role": "user", "content": "hello big world"}],
        "stream": True,
    }


@MODES
def test_ollama_task_model_and_system_params(
    make_config: MakeConfig, ollama: FakeHost, mode: Mode
) -> None:
    pool = http_pool(make_config, ollama.url)
    outcome = run_job(pool, job("the question", model="task-model", system="be brief"), mode)
    assert outcome[:3] == ("echo: the question", 4, 3)
    [request] = ollama.chat_requests
    assert request.body == {
        "model": "task-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "the question"},
        ],
        "stream": True,
    }


@MODES
def test_openai_bearer_key_from_env_and_usage(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch, mode: Mode
) -> None:
    monkeypatch.setenv("YGG_TEST_KEY", "s3cret")
    with FakeHost("openai", api_key="s3cret") as host:
        key_env = 'api_key_env = "YGG_TEST_KEY"'
        pool = http_pool(make_config, host.url, backend="openai", extra=key_env)
        outcome = run_job(pool, job("one two", system="sys"), mode)
        assert outcome[:3] == ("echo: one two", 3, 3)
        [request] = host.chat_requests
        assert request.path == "/chat/completions"
        assert request.headers["authorization"] == "Bearer s3cret"
        assert request.body["model"] == "pool-model"
        assert request.body["messages"][0] == {"role": "system", "content": "sys"}
        if mode == "async":
            assert health(pool)  # /models needs the key too


@MODES
def test_openai_without_key_is_refused(make_config: MakeConfig, mode: Mode) -> None:
    with FakeHost("openai", api_key="s3cret") as host:
        pool = http_pool(make_config, host.url, backend="openai")
        failed = failure_of(pool, job(), mode)
        assert (failed.retryable, failed.unreachable) == (False, False)
        assert "HTTP 401" in failed.message and "invalid api key" in failed.message


@MODES
def test_openai_missing_key_env_is_a_config_error(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch, mode: Mode
) -> None:
    monkeypatch.delenv("YGG_TEST_KEY", raising=False)
    pool = http_pool(
        make_config, closed_port_url(), backend="openai", extra='api_key_env = "YGG_TEST_KEY"'
    )
    build = make_backend if mode == "async" else BlockingBackend
    with pytest.raises(ConfigError) as info:
        build(pool)
    assert "pools.gpu" in info.value.message and "YGG_TEST_KEY" in info.value.message


CLASSIFIED = [
    # id, step, retryable, retry_after_s, message fragment
    ("500", Step(status=500), True, None, "answered HTTP 500: scripted HTTP 500"),
    ("502", Step(status=502), True, None, "HTTP 502"),
    ("503", Step(status=503), True, None, "HTTP 503"),
    ("429", Step(status=429), True, None, "HTTP 429"),
    ("429-retry-after", Step(status=429, retry_after="7"), True, 7.0, "HTTP 429"),
    ("503-retry-after", Step(status=503, retry_after="2"), True, 2.0, "HTTP 503"),
    ("400", Step(status=400), False, None, "HTTP 400"),
    ("401", Step(status=401), False, None, "HTTP 401"),
    ("404", Step(status=404), False, None, "HTTP 404"),
    ("reset", Step(action="reset"), True, None, "127.0.0.1"),
    ("invalid-json", Step(body=b"{not json"), False, None, "invalid JSON"),
    ("redirect", Step(action="redirect"), False, None, "redirects are not followed"),
]


@MODES
@pytest.mark.parametrize(
    ("step", "retryable", "retry_after_s", "fragment"),
    [case[1:] for case in CLASSIFIED],
    ids=[case[0] for case in CLASSIFIED],
)
def test_failures_are_classified(
    make_config: MakeConfig,
    ollama: FakeHost,
    mode: Mode,
    step: Step,
    retryable: bool,
    retry_after_s: float | None,
    fragment: str,
) -> None:
    ollama.script(step)
    failed = failure_of(http_pool(make_config, ollama.url), job(), mode)
    assert failed.retryable is retryable
    assert failed.unreachable is False  # the host was reached: the attempt is charged
    assert failed.retry_after_s == retry_after_s
    assert fragment in failed.message
    assert ollama.chat_count == 1  # nothing retried or followed behind our back


def test_retry_after_as_http_date(make_config: MakeConfig, ollama: FakeHost) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    ollama.script(Step(status=503, retry_after=when))
    failed = failure_of(http_pool(make_config, ollama.url), job(), "async")
    assert failed.retryable and failed.retry_after_s == pytest.approx(30, abs=3)


@MODES
def test_connection_refused_is_unreachable(make_config: MakeConfig, mode: Mode) -> None:
    failed = failure_of(http_pool(make_config, closed_port_url()), job(), mode)
    assert (failed.retryable, failed.unreachable) == (True, True)
    assert "cannot be reached" in failed.message


@MODES
def test_oversized_body_is_rejected(
    make_config: MakeConfig, ollama: FakeHost, monkeypatch: pytest.MonkeyPatch, mode: Mode
) -> None:
    for module in ("base", "protocols", "blocking"):
        monkeypatch.setattr(f"ygg.backends.{module}.MAX_RESPONSE_BYTES", 1000)
    pool = http_pool(make_config, ollama.url)
    assert run_job(pool, job("short"), mode).result == "echo: short"
    failed = failure_of(pool, job("word " * 200), mode)
    assert (failed.retryable, failed.unreachable) == (False, False)
    assert "more than 1000 bytes" in failed.message


def test_blocking_trickle_is_cut_by_the_total_deadline(
    make_config: MakeConfig, ollama: FakeHost
) -> None:
    ollama.script(Step(action="trickle", delay_s=0.05))
    began = time.monotonic()
    failed = failure_of(http_pool(make_config, ollama.url), job(), "blocking", timeout_s=0.5)
    assert time.monotonic() - began < 1.5
    assert failed.retryable and "timed out after 0.5 s" in failed.message
    assert ollama.wait_for(lambda h: h.in_flight == 0, timeout_s=2.0)  # the request was closed


def test_blocking_hang_is_cut_by_the_attempt_timeout(
    make_config: MakeConfig, ollama: FakeHost
) -> None:
    """The task's timeout, not only the pool's (10 s here), bounds a host that never answers."""
    ollama.script(Step(action="hang"))
    began = time.monotonic()
    failed = failure_of(http_pool(make_config, ollama.url), job(), "blocking", timeout_s=0.5)
    assert time.monotonic() - began < 1.5
    assert failed.retryable and "timed out after 0.5 s" in failed.message
    assert ollama.wait_for(lambda h: h.in_flight == 0, timeout_s=2.0)


def test_async_cancel_closes_the_request(make_config: MakeConfig, ollama: FakeHost) -> None:
    ollama.script(Step(action="hang"))
    pool = http_pool(make_config, ollama.url)

    async def main() -> None:
        backend = make_backend(pool)
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await backend.run(job())
        finally:
            await backend.aclose()

    began = time.monotonic()
    uvloop.run(main())
    assert time.monotonic() - began < 1.0
    assert ollama.wait_for(lambda h: h.in_flight == 0, timeout_s=2.0)


def test_health(make_config: MakeConfig, ollama: FakeHost) -> None:
    assert health(http_pool(make_config, ollama.url)) is True
    assert health(http_pool(make_config, closed_port_url())) is False
    assert [r.path for r in ollama.requests] == ["/api/version"]


# --- command backend, directly ---------------------------------------------------------------


@MODES
def test_command_success(make_config: MakeConfig, tmp_path: Path, mode: Mode) -> None:
    log = tmp_path / "cmd.log"
    outcome = run_job(command_pool(make_config, cmd_argv(log)), job("the prompt"), mode)
    assert outcome.result == "result for 7: the prompt"
    [run] = read_cmd_log(log)
    assert (run.task, run.attempt, run.pool, run.finished) == ("7", 1, "cmd", True)


@MODES
def test_command_nonzero_exit_is_retryable_with_stderr_tail(
    make_config: MakeConfig, tmp_path: Path, mode: Mode
) -> None:
    pool = command_pool(make_config, cmd_argv(tmp_path / "cmd.log"))
    failed = failure_of(pool, job(exit="3", stderr="x" * 5000 + " the last words"), mode)
    assert (failed.retryable, failed.unreachable) == (True, False)
    assert failed.message.startswith("command exited with status 3: ")
    assert failed.message.endswith("the last words")
    assert len(failed.message) < 2100  # the tail, not the whole of stderr


@MODES
def test_command_missing_executable(make_config: MakeConfig, tmp_path: Path, mode: Mode) -> None:
    pool = command_pool(make_config, [str(tmp_path / "no-such-program")])
    failed = failure_of(pool, job(), mode)
    assert failed.retryable is False
    assert "cannot be started" in failed.message and "no-such-program" in failed.message


@MODES
def test_command_stdout_is_capped(make_config: MakeConfig, tmp_path: Path, mode: Mode) -> None:
    pool = command_pool(make_config, cmd_argv(tmp_path / "cmd.log"))
    failed = failure_of(pool, job(stdout_bytes=str(MAX_RESPONSE_BYTES + 1)), mode)
    assert failed.retryable is False
    assert failed.message == f"command wrote more than {MAX_RESPONSE_BYTES} bytes to stdout"


def test_command_async_cancel_kills_the_group(make_config: MakeConfig, tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    pool = command_pool(make_config, cmd_argv(log))

    async def main() -> Run:
        backend = make_backend(pool)
        task = asyncio.create_task(backend.run(job(seconds="30", spawn_child="1")))
        run = await async_run_with_child(log)
        task.cancel()
        async with asyncio.timeout(5.0):
            with pytest.raises(asyncio.CancelledError):
                await task
        return run

    run = uvloop.run(main())
    assert_gone(run.pid, *run.child_pids)
    assert read_cmd_log(log)[0].end is None


def test_command_async_timeout_kills_the_group(make_config: MakeConfig, tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    pool = command_pool(make_config, cmd_argv(log))
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        run_job(pool, job(seconds="30", spawn_child="1"), "async", timeout_s=0.6)
    assert time.monotonic() - began < 1.6
    run = run_with_child(log, timeout_s=0.1)
    assert_gone(run.pid, *run.child_pids)
    assert read_cmd_log(log)[0].end is None


def test_command_blocking_timeout_kills_the_group(make_config: MakeConfig, tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    pool = command_pool(make_config, cmd_argv(log))
    began = time.monotonic()
    failed = failure_of(pool, job(seconds="30", spawn_child="1"), "blocking", timeout_s=0.6)
    assert time.monotonic() - began < 1.6
    assert failed.retryable and "timed out after 0.6 s" in failed.message
    run = run_with_child(log, timeout_s=0.1)
    assert_gone(run.pid, *run.child_pids)
    assert read_cmd_log(log)[0].end is None


def test_command_blocking_stop_kills_the_group(make_config: MakeConfig, tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    backend = BlockingBackend(command_pool(make_config, cmd_argv(log)))
    raised: list[BaseException] = []

    def target() -> None:
        try:
            backend.run(job(seconds="30", spawn_child="1"), RUN_LIMIT_S)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        run = run_with_child(log)
    finally:
        backend.stop.set()
        thread.join(5.0)
    assert not thread.is_alive()
    assert [type(exc) for exc in raised] == [Interrupted]
    assert_gone(run.pid, *run.child_pids)


# --- end to end through the dispatchers ------------------------------------------------------


@DISPATCHERS
def test_e2e_503_twice_then_done(make_config: MakeConfig, ollama: FakeHost, legacy: bool) -> None:
    ollama.script(Step(status=503), Step(status=503))
    config = e2e_config(make_config, ollama.url)
    store = open_store(config.daemon.db)
    task = submit(store, config, "flaky", prompt="hi there")
    run_until_idle(config, legacy)
    final = store.get(task.id)
    assert (final.status, final.attempts, final.result) == ("done", 3, "echo: hi there")
    assert (final.tokens_in, final.tokens_out) == (2, 3)
    assert [r.status for r in ollama.chat_requests] == [503, 503, 200]


@DISPATCHERS
def test_e2e_500_forever_fails_after_max_attempts(
    make_config: MakeConfig, ollama: FakeHost, legacy: bool
) -> None:
    ollama.default = Step(status=500)
    config = e2e_config(make_config, ollama.url)
    store = open_store(config.daemon.db)
    task = submit(store, config, "broken host", max_attempts=2)
    run_until_idle(config, legacy)
    final = store.get(task.id)
    assert (final.status, final.attempts) == ("failed", 2)
    assert "HTTP 500" in (final.error or "")
    assert ollama.chat_count == 2


@DISPATCHERS
def test_e2e_400_fails_at_once(make_config: MakeConfig, ollama: FakeHost, legacy: bool) -> None:
    ollama.script(Step(status=400))
    config = e2e_config(make_config, ollama.url)
    store = open_store(config.daemon.db)
    task = submit(store, config, "bad request", max_attempts=3)
    run_until_idle(config, legacy)
    final = store.get(task.id)
    assert (final.status, final.attempts) == ("failed", 1)
    assert "HTTP 400" in (final.error or "")
    assert ollama.chat_count == 1


@DISPATCHERS
def test_e2e_429_retry_after_is_honoured(
    make_config: MakeConfig, ollama: FakeHost, legacy: bool
) -> None:
    ollama.script(Step(status=429, retry_after="1"))
    config = e2e_config(make_config, ollama.url)
    store = open_store(config.daemon.db)
    task = submit(store, config, "rate limited")
    run_until_idle(config, legacy)
    final = store.get(task.id)
    assert (final.status, final.attempts) == ("done", 2)
    first, second = ollama.chat_requests
    assert 0.95 <= second.start - first.start < 3.0  # backoff alone would be ~0.01 s


@DISPATCHERS
def test_e2e_unreachable_host_does_not_spend_attempts(
    make_config: MakeConfig, legacy: bool
) -> None:
    config = e2e_config(make_config, closed_port_url())
    store = open_store(config.daemon.db)
    task = submit(store, config, "nobody home", max_attempts=1)
    run_bounded(config, legacy, seconds=1.0)
    final = store.get(task.id)
    assert (final.status, final.attempts) == ("queued", 0)
    assert "cannot be reached" in (final.error or "")


@DISPATCHERS
def test_e2e_trickling_host_times_out(
    make_config: MakeConfig, ollama: FakeHost, legacy: bool
) -> None:
    ollama.default = Step(action="trickle", delay_s=0.05)
    config = e2e_config(make_config, ollama.url, extra="timeout = 0.5\nmax_attempts = 1")
    store = open_store(config.daemon.db)
    task = submit(store, config, "slow drip")
    run_until_idle(config, legacy)
    final = store.get(task.id)
    assert (final.status, final.attempts) == ("failed", 1)
    assert "timed out" in (final.error or "")
    [request] = ollama.chat_requests
    assert ollama.wait_for(lambda h: h.in_flight == 0, timeout_s=2.0)
    assert request.end is not None and request.end - request.start < 1.5


@DISPATCHERS
def test_e2e_task_timeout_cuts_a_hanging_host(
    make_config: MakeConfig, ollama: FakeHost, legacy: bool
) -> None:
    """A task's own timeout (shorter than the pool's 10 s) bounds a host that never answers."""
    ollama.default = Step(action="hang")
    config = e2e_config(make_config, ollama.url)
    store = open_store(config.daemon.db)
    task = submit(store, config, "hung", max_attempts=1, timeout_s=0.5)
    began = time.monotonic()
    run_until_idle(config, legacy)
    final = store.get(task.id)
    assert (final.status, final.attempts) == ("failed", 1)
    assert "timed out" in (final.error or "")
    assert ollama.chat_count == 1
    assert time.monotonic() - began < 4.0


@DISPATCHERS
def test_e2e_slots_bound_requests_in_flight(
    make_config: MakeConfig, ollama: FakeHost, legacy: bool
) -> None:
    config = e2e_config(make_config, ollama.url, slots=2)
    store = open_store(config.daemon.db)
    count = 2 if legacy else 6  # legacy runs them one by one: fewer keep the test short
    tasks = [submit(store, config, f"t{i}", prompt=f"job {i} sleep=0.3") for i in range(count)]
    run_until_idle(config, legacy)
    finals = [store.get(t.id) for t in tasks]
    assert all(t.status == "done" and t.attempts == 1 for t in finals)
    assert ollama.chat_count == count
    # The async dispatcher fills both slots; the legacy one runs one task per pool at a time.
    assert ollama.max_in_flight == (1 if legacy else 2)


@DISPATCHERS
def test_api_key_never_reaches_logs_results_or_the_database(
    make_config: MakeConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    legacy: bool,
) -> None:
    secret = "sk-live-9f8e7d6c5b4a"
    monkeypatch.setenv("YGG_TEST_KEY", secret)
    with FakeHost("openai", api_key="another-key") as host:  # refuses ours: 401
        config = make_config(
            f'[pools.gpu]\nbackend = "openai"\nurl = "{host.url}"\nmodel = "m"\n'
            'api_key_env = "YGG_TEST_KEY"\nslots = 1\nkinds = ["general"]\n',
            daemon='log_level = "debug"',
        )
        store = open_store(config.daemon.db)
        task = submit(store, config, "refused", prompt="hello")
        run_until_idle(config, legacy)
        assert host.chat_requests[0].headers["authorization"] == f"Bearer {secret}"
    final = store.get(task.id)
    assert final.status == "failed" and "401" in (final.error or "")
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    store.close()
    for path in Path(config.daemon.db).parent.glob("queue.db*"):
        assert secret.encode() not in path.read_bytes()
