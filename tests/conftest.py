"""Shared fixtures: configurations written as real TOML files, and real SQLite queues."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ygg.config import Config, load

REPO = Path(__file__).resolve().parent.parent
OWN_BEADS = REPO / "tests" / "fixtures" / "beads"  # exports written for these tests
# The extra tier: real Beads exports from public repositories, in ../shared beside the clone.
# CI sets YGG_BEADS_EXPORTS to that folder; a clone on its own runs without it.
SHARED_BEADS_VAR = "YGG_BEADS_EXPORTS"
MakeConfig = Callable[..., Config]


def shared_beads() -> Path | None:
    """The folder of real exports when the extra tier is on, else None."""
    folder = os.environ.get(SHARED_BEADS_VAR)
    return Path(folder) if folder else None


def pytest_configure(config: pytest.Config) -> None:
    folder = shared_beads()
    if folder is not None and not sorted(folder.glob("*.jsonl")):
        raise pytest.UsageError(f"{SHARED_BEADS_VAR}={folder} holds no Beads exports (*.jsonl)")


def pytest_report_header(config: pytest.Config) -> str:
    folder = shared_beads()
    state = f"on ({folder})" if folder else f"off (set {SHARED_BEADS_VAR} to turn it on)"
    return f"tier of real Beads exports: {state}"


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YGG_CONFIG", raising=False)


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """Writes `ygg.toml` in tmp_path from a pools TOML snippet and loads it."""

    def make(pools: str, *, daemon: str = "", defaults: str = "") -> Config:
        text = (
            '[daemon]\ndb = "queue.db"\nlog_format = "json"\npoll_seconds = 0.5\n'
            + ("" if "status_listen" in daemon else 'status_listen = ""\n')
            + f"{daemon}\n[defaults]\n{defaults}\n{pools}"
        )
        path = tmp_path / "ygg.toml"
        path.write_text(text)
        return load(str(path))

    return make


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    return env
