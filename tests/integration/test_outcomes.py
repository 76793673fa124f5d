"""Whatever a host answers or the store refuses, the attempt ends in a recorded outcome and its
slot and row are freed — in both loop modes, against real HTTP hosts and a real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import structlog

from tests.conftest import MakeConfig
from tests.integration.test_backends import DISPATCHERS, run_until_idle, submit
from tests.support.hosts import FakeHost, Step
from ygg.config import Config
from ygg.store import Store, open_store
from ygg.store.model import Outcome
from ygg.store.sqlite import SQLiteStore


@pytest.fixture
def openai() -> Iterator[FakeHost]:
    with FakeHost("openai") as host:
        yield host


def openai_config(make_config: MakeConfig, host: FakeHost, *, lease_s: float = 30) -> Config:
    return make_config(
        f'[pools.gpu]\nbackend = "openai"\nurl = "{host.url}"\nmodel = "m"\nslots = 1\n'
        'kinds = ["general"]\n',
        daemon=f"lease_seconds = {lease_s}",
        defaults="backoff_seconds = 0.01\ntimeout = 10",
    )


def answer(content: str, prompt_tokens: int, completion_tokens: int) -> bytes:
    """An OpenAI answer as raw JSON text: json.dumps writes a lone surrogate as \\ud83d."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return json.dumps({"choices": [{"message": {"content": content}}], "usage": usage}).encode()


@DISPATCHERS
def test_an_answer_the_store_cannot_keep_as_sent_is_made_storable(
    make_config: MakeConfig, openai: FakeHost, legacy: bool
) -> None:
    openai.script(Step(body=answer("half an emoji: \ud83d, a NUL: \x00.", 3, 2**70)))
    config = openai_config(make_config, openai)
    with open_store(config.daemon.db) as store:
        task = submit(store, config, "surrogate")
    run_until_idle(config, legacy)
    with open_store(config.daemon.db) as store:
        done = store.get(task.id)
        assert store.counts() == {"done": 1}
    assert (done.status, done.attempts) == ("done", 1)
    assert done.result == "half an emoji: \ufffd, a NUL: \ufffd."
    assert (done.tokens_in, done.tokens_out) == (3, None)  # 2**70 fits no engine: dropped


class RefusingStore(SQLiteStore):
    """A real store whose first `refusals` outcome writes raise as a driver would on a value it
    cannot bind — the one fault that cannot be produced for real once answers are storable."""

    refusals: ClassVar[dict[str, int]] = {}

    def _refuse(self, method: str) -> None:
        if self.refusals.get(method, 0) > 0:
            self.refusals[method] -= 1
            raise sqlite3.InterfaceError(f"Error binding parameter 1 ({method})")

    def complete(self, *args: Any, **kwargs: Any) -> list[str] | None:
        self._refuse("complete")
        return super().complete(*args, **kwargs)

    def fail(self, *args: Any, **kwargs: Any) -> str | None:
        self._refuse("fail")
        return super().fail(*args, **kwargs)


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> type[RefusingStore]:
    def opener(url: str, **options: Any) -> Store:
        return RefusingStore(url, **options)

    monkeypatch.setattr("ygg.dispatch.dispatcher.open_store", opener)
    monkeypatch.setattr("ygg.dispatch.legacy.open_store", opener)
    monkeypatch.setattr(RefusingStore, "refusals", {})
    return RefusingStore


@DISPATCHERS
def test_an_outcome_the_store_refuses_fails_the_attempt_by_name(
    make_config: MakeConfig, openai: FakeHost, legacy: bool, refusing: type[RefusingStore]
) -> None:
    refusing.refusals["complete"] = 1
    config = openai_config(make_config, openai)
    with open_store(config.daemon.db) as store:
        task = submit(store, config, "refused once", max_attempts=2)
    run_until_idle(config, legacy)
    with open_store(config.daemon.db) as store:
        done = store.get(task.id)
    assert (done.status, done.attempts) == ("done", 2)
    assert openai.chat_count == 2


@DISPATCHERS
def test_a_refused_outcome_is_recorded_as_outcome_not_stored(
    make_config: MakeConfig, openai: FakeHost, legacy: bool, refusing: type[RefusingStore]
) -> None:
    refusing.refusals["complete"] = 1
    config = openai_config(make_config, openai)
    with open_store(config.daemon.db) as store:
        task = submit(store, config, "refused", max_attempts=1)
    run_until_idle(config, legacy)
    with open_store(config.daemon.db) as store:
        failed = store.get(task.id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.error is not None and failed.error.startswith("OutcomeNotStored:")


@DISPATCHERS
def test_a_row_left_running_without_an_attempt_is_taken_back(
    make_config: MakeConfig, openai: FakeHost, legacy: bool, refusing: type[RefusingStore]
) -> None:
    """Both the answer and the failure are refused: the row stays `running` with nobody behind
    it. The lease keeper must not renew it forever: once its lease is out it is released, and
    the task runs again and is done."""
    refusing.refusals.update(complete=1, fail=1)
    config = openai_config(make_config, openai, lease_s=1)
    with open_store(config.daemon.db) as store:
        task = submit(store, config, "orphaned", max_attempts=3)
    with structlog.testing.capture_logs() as events:
        run_until_idle(config, legacy)
    with open_store(config.daemon.db) as store:
        done = store.get(task.id)
        assert store.counts() == {"done": 1}
    assert (done.status, done.attempts) == ("done", 2)
    assert openai.chat_count == 2
    names = [e["event"] for e in events]
    assert "orphan_released" in names
    if legacy:
        assert "pool_thread_restarted" in names


def test_storable_outcome_is_idempotent_on_clean_text() -> None:
    clean = Outcome("plain text ✓", 1, 2)
    assert clean.storable() == clean
