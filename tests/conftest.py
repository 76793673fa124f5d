"""Shared fixtures: configurations written as real TOML files, and real SQLite queues."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ygg.config import Config, load

REPO = Path(__file__).resolve().parent.parent
BEADS_FIXTURES = REPO.parent / "shared" / "fixtures" / "beads"  # CI checks ../shared out beside us
MakeConfig = Callable[..., Config]


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
