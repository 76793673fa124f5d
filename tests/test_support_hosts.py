"""The fakes themselves: FakeHost over plain httpx, cmd_host.py over subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cmdlog import Run, cmd_argv, max_overlap, read_cmd_log, runs_by_task
from tests.support.hosts import FakeHost, Step
from ygg.backends.host_model import HostModel

TIMEOUT = httpx.Timeout(2.0)


def chat(host: FakeHost, content: str, model: str = "m", timeout: float = 2.0) -> httpx.Response:
    path = "/api/chat" if host.protocol == "ollama" else "/chat/completions"
    payload = {"model": model, "messages": [{"role": "user", "content": content}], "stream": False}
    return httpx.post(host.url + path, json=payload, timeout=timeout)


@pytest.fixture
def ollama() -> Iterator[FakeHost]:
    with FakeHost("ollama") as host:
        yield host


@pytest.fixture
def openai() -> Iterator[FakeHost]:
    with FakeHost("openai") as host:
        yield host


def chat_in_background(host: FakeHost) -> tuple[threading.Thread, list[httpx.HTTPError]]:
    errors: list[httpx.HTTPError] = []

    def run() -> None:
        try:
            chat(host, "q", timeout=5.0)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def assert_stops_promptly(host: FakeHost) -> None:
    began = time.monotonic()
    host.stop()
    assert time.monotonic() - began < 1.0


# FakeHost


def test_ollama_reply_and_version(ollama: FakeHost) -> None:
    response = chat(ollama, "hello there world")
    assert response.status_code == 200
    data = response.json()
    assert data["message"] == {"role": "assistant", "content": "echo: hello there world"}
    assert data["done"] is True and data["model"] == "m"
    assert (data["prompt_eval_count"], data["eval_count"]) == (3, 4)
    assert httpx.get(ollama.url + "/api/version").json() == {"version": "0.5.0"}
    assert httpx.get(ollama.url + "/nope").status_code == 404
    [chat_record, *_] = ollama.requests
    assert chat_record.path == "/api/chat" and chat_record.method == "POST"
    assert chat_record.body["messages"][0]["content"] == "hello there world"
    assert chat_record.end is not None and chat_record.end >= chat_record.start
    assert chat_record.status == 200 and ollama.chat_count == 1


def test_openai_reply_and_models(openai: FakeHost) -> None:
    data = chat(openai, "hi").json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "echo: hi"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    v1 = httpx.post(
        openai.url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
    )
    assert v1.json()["choices"][0]["message"]["content"] == "echo: x"
    assert httpx.get(openai.url + "/models").json() == {"data": [{"id": "m"}]}
    assert httpx.get(openai.url + "/api/chat").status_code == 404


def test_openai_api_key() -> None:
    with FakeHost("openai", api_key="k") as host:
        assert httpx.get(host.url + "/models").status_code == 401
        ok = httpx.get(host.url + "/models", headers={"authorization": "Bearer k"})
        assert ok.status_code == 200


def test_scripted_errors_then_default(ollama: FakeHost, openai: FakeHost) -> None:
    ollama.script(Step(status=500), Step(status=429, retry_after="3"), Step(status=503))
    first, second, third, fourth = (chat(ollama, "q") for _ in range(4))
    assert first.status_code == 500 and isinstance(first.json()["error"], str)
    assert second.status_code == 429 and second.headers["retry-after"] == "3"
    assert third.status_code == 503
    assert fourth.status_code == 200

    openai.script(Step(status=429, retry_after=2.5))
    limited = chat(openai, "q")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    openai.default = Step(status=503)
    assert chat(openai, "q").json()["error"]["type"] == "server_error"


def test_raw_body_and_redirect(ollama: FakeHost) -> None:
    ollama.script(Step(body=b"{not json"), Step(action="redirect"))
    assert chat(ollama, "q").content == b"{not json"
    redirected = chat(ollama, "q")
    assert redirected.status_code == 302
    assert redirected.headers["location"] == ollama.url + "/api/chat"


def test_reset_is_a_connection_error(ollama: FakeHost) -> None:
    ollama.script(Step(action="reset"))
    with pytest.raises(httpx.ReadError):
        chat(ollama, "q")
    assert ollama.wait_for(lambda h: h.in_flight == 0, timeout_s=1.0)
    assert ollama.requests[0].status is None
    assert chat(ollama, "again").status_code == 200


def test_hang_until_client_timeout_then_stop(ollama: FakeHost) -> None:
    ollama.script(Step(action="hang"), Step(action="hang"))
    with pytest.raises(httpx.ReadTimeout):
        chat(ollama, "q", timeout=0.2)
    assert ollama.wait_for(lambda h: h.in_flight == 0, timeout_s=1.0)  # disconnect noticed

    # a second one still hanging when the host stops
    thread, errors = chat_in_background(ollama)
    assert ollama.wait_for(lambda h: h.in_flight == 1, timeout_s=1.0)
    assert_stops_promptly(ollama)
    thread.join(2.0)
    assert not thread.is_alive() and len(errors) == 1


def test_trickle(ollama: FakeHost) -> None:
    ollama.script(Step(action="trickle", delay_s=0.02), Step(action="trickle", delay_s=0.5))
    payload = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    with httpx.Client(timeout=TIMEOUT) as client:
        with client.stream("POST", ollama.url + "/api/chat", json=payload) as response:
            assert int(response.headers["content-length"]) > 100_000
            received = b""
            for chunk in response.iter_raw():
                received += chunk
                if len(received) >= 3:
                    break
        assert received.strip() == b""
        assert ollama.wait_for(lambda h: h.in_flight == 0, timeout_s=1.0)
        with pytest.raises(httpx.ReadTimeout):
            client.post(ollama.url + "/api/chat", json=payload, timeout=0.2)
    assert_stops_promptly(ollama)


def test_stop_with_idle_keepalive_connection(ollama: FakeHost) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(ollama.url + "/api/version").status_code == 200
        assert_stops_promptly(ollama)  # the connection is still open in the client's pool


def test_concurrency_is_recorded(openai: FakeHost) -> None:
    threads = [
        threading.Thread(target=chat, args=(openai, "sleep=0.2", f"m{i % 2}")) for i in range(5)
    ]
    for thread in threads:
        thread.start()
    assert openai.wait_for_requests(5, timeout_s=10.0)
    for thread in threads:
        thread.join(10.0)
    # All five in flight at once is what proves concurrency (no wall-clock bound: shared machine).
    assert openai.max_in_flight == 5 and openai.in_flight == 0
    assert openai.max_in_flight_by_model == {"m0": 3, "m1": 2}
    assert all(r.end is not None and r.end - r.start >= 0.2 for r in openai.requests)
    assert not openai.wait_for_requests(6, timeout_s=0.05)


def test_in_flight_is_lowered_before_the_answer_is_sent(ollama: FakeHost) -> None:
    """Holding the host's lock keeps it from lowering its count; no answer may leave meanwhile
    (else a client could hold its answer while the host still counts the request)."""
    ollama.default = Step(delay_s=0.2)
    answered = threading.Event()
    thread = threading.Thread(target=lambda: (chat(ollama, "q", timeout=5.0), answered.set()))
    thread.start()
    try:
        assert ollama.wait_for(lambda h: h.in_flight == 1, timeout_s=2.0)
        with ollama._lock:
            assert not answered.wait(1.0), "answered while still counted in flight"
        assert answered.wait(2.0)
        assert ollama.in_flight == 0
        assert ollama.requests[0].end is not None and ollama.requests[0].status == 200
    finally:
        thread.join(5.0)


def test_open_connections_are_recorded(ollama: FakeHost) -> None:
    ollama.script(Step(action="hang"))
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(ollama.url + "/api/version").status_code == 200
        assert ollama.open_connections == 1  # kept alive by the client
        with pytest.raises(httpx.ReadTimeout):
            chat(ollama, "q", timeout=0.2)  # a second connection, dropped by the client
        assert ollama.wait_for(lambda h: h.open_connections == 1, timeout_s=2.0)
    assert ollama.wait_for(lambda h: h.open_connections == 0, timeout_s=2.0)


def test_delay_is_cut_short_by_stop() -> None:
    host = FakeHost("ollama").start()
    host.default = Step(delay_s=30)
    thread, errors = chat_in_background(host)
    assert host.wait_for_requests(1, timeout_s=1.0)
    assert_stops_promptly(host)
    thread.join(2.0)
    assert not thread.is_alive() and len(errors) == 1


# cmd_host.py


def run_cmd(
    log: Path,
    task: str,
    prompt: str = "",
    **params: str,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YGG_TASK_ID": task, "YGG_ATTEMPT": "1", "YGG_POOL": "p"}
    env.update({f"YGG_PARAM_{k.upper()}": v for k, v in params.items()})
    return subprocess.run(
        cmd_argv(log), input=prompt, env=env, capture_output=True, text=True, timeout=10
    )


def test_cmd_host_success_and_failure(tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    done = run_cmd(log, "7", "the prompt")
    assert done.returncode == 0 and done.stdout == "result for 7: the prompt"
    failed = run_cmd(log, "8", exit="3", stderr="boom")
    assert failed.returncode == 3 and failed.stdout == "" and failed.stderr == "boom"
    runs = read_cmd_log(log)
    assert [(r.task, r.attempt, r.pool, r.finished) for r in runs] == [
        ("7", 1, "p", True),
        ("8", 1, "p", True),
    ]
    assert max_overlap(runs) == 1


def test_cmd_host_overlap(tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    threads = [
        threading.Thread(target=run_cmd, args=(log, str(i)), kwargs={"seconds": "0.4"})
        for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    runs = read_cmd_log(log)
    assert len(runs) == 3 and all(r.finished for r in runs)
    assert max_overlap(runs) == 3 and max_overlap(runs, pool="other") == 0
    assert sorted(runs_by_task(runs)) == ["0", "1", "2"]


def test_cmd_host_group_kill_leaves_no_end(tmp_path: Path) -> None:
    log = tmp_path / "cmd.log"
    env = {
        **os.environ,
        "YGG_TASK_ID": "9",
        "YGG_ATTEMPT": "2",
        "YGG_POOL": "p",
        "YGG_PARAM_SECONDS": "30",
        "YGG_PARAM_SPAWN_CHILD": "1",
    }
    process = subprocess.Popen(
        cmd_argv(log), stdin=subprocess.PIPE, env=env, start_new_session=True
    )
    assert process.stdin is not None
    process.stdin.close()
    deadline = time.monotonic() + 5
    while not (read_cmd_log(log) and read_cmd_log(log)[0].child_pids):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    [run] = read_cmd_log(log)
    [child] = run.child_pids
    assert run.pid == process.pid and os.getpgid(child) == process.pid
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL
    deadline = time.monotonic() + 2
    while pid_alive(child):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert read_cmd_log(log)[0].end is None


def pid_alive(pid: int) -> bool:
    """False once the process is gone or a zombie (a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_max_overlap_open_runs_and_touching_ends() -> None:
    runs = [
        Run("a", 1, "p", 1, 0.0, 1.0),
        Run("b", 1, "p", 2, 1.0, 2.0),
        Run("c", 1, "q", 3, 0.5, None),
        Run("d", 1, "p", 4, 5.0, 6.0),
    ]
    assert max_overlap(runs) == 2
    assert max_overlap(runs, pool="p") == 1
    assert max_overlap([]) == 0


def test_a_loaded_host_refuses_past_capacity_and_shares_past_its_knee() -> None:
    """The test host under a host model: 2 requests fit (sharing one request's throughput past
    the knee of 1), a third at the same time gets a 503, and the count comes back down."""
    with FakeHost("ollama") as host:
        host.load_model = HostModel(knee=1, capacity=2, overload="503")
        statuses: list[int] = []

        def ask() -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": "sleep=0.5"}]}
            statuses.append(httpx.post(f"{host.url}/api/chat", json=body, timeout=30).status_code)

        first = [threading.Thread(target=ask) for _ in range(2)]
        for thread in first:
            thread.start()
        assert host.wait_for(lambda h: h.load_model is not None and h.load_model.running == 2, 10)
        ask()  # while both still run (each has 0.5 s of work at half speed)
        for thread in first:
            thread.join(30)
        assert sorted(statuses) == [200, 200, 503]
        assert (host.load_model.peak, host.load_model.running) == (2, 0)


def test_a_streamed_answer_is_framed_as_real_hosts_frame_it(
    ollama: FakeHost, openai: FakeHost
) -> None:
    """Read raw, not through ygg's parser: the test hosts must not share its mistakes."""
    body = {"model": "m", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    openai.first_token_s = 0.2
    with_usage = {**body, "stream_options": {"include_usage": True}}
    began = time.monotonic()
    answer = httpx.post(f"{openai.url}/chat/completions", json=with_usage, timeout=5.0)
    assert time.monotonic() - began >= 0.2
    assert answer.headers["content-type"] == "text/event-stream"
    assert answer.headers["transfer-encoding"] == "chunked"
    events = [e.removeprefix("data: ") for e in answer.text.split("\n\n") if e]
    chunks = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert deltas == ["echo:", " a", " b"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    without = httpx.post(f"{openai.url}/chat/completions", json=body, timeout=5.0)
    assert "usage" not in without.text  # as real servers: only when asked for
    lines = httpx.post(f"{ollama.url}/api/chat", json=body, timeout=5.0).text.splitlines()
    parts = [json.loads(line) for line in lines]
    assert [p["message"]["content"] for p in parts] == ["echo:", " a", " b", ""]
    assert [p["done"] for p in parts] == [False, False, False, True]
    assert (parts[-1]["prompt_eval_count"], parts[-1]["eval_count"]) == (2, 3)
