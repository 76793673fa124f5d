"""Shared fixtures: configurations written as real TOML files, real SQLite queues, and a real
PostgreSQL cluster for the tests marked `postgres` (tests/support/pg.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.pg import PG_BIN, PgCluster, missing_binaries
from ygg.config import Config, load

REPO = Path(__file__).resolve().parent.parent
OWN_BEADS = REPO / "tests" / "fixtures" / "beads"  # exports written for these tests
# The extra tier: real Beads exports from public repositories, in ../shared beside the clone.
# CI sets YGG_BEADS_EXPORTS to that folder; a clone on its own runs without it.
SHARED_BEADS_VAR = "YGG_BEADS_EXPORTS"
MakeConfig = Callable[..., Config]
# The PostgreSQL tier: on wherever the server's binaries are; YGG_TEST_POSTGRES=1 (CI) makes
# their absence fail the run instead of skipping, =0 turns the tier off.
POSTGRES_VAR = "YGG_TEST_POSTGRES"
POSTGRES_FIXTURES = ("pg_cluster", "pg_url")


@pytest.fixture(autouse=True, scope="session")
def config_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The configuration cache (ygg/config/cache.py) of every test and every command it runs
    goes to a throwaway folder, never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


def shared_beads() -> Path | None:
    """The folder of real exports when the extra tier is on, else None."""
    folder = os.environ.get(SHARED_BEADS_VAR)
    return Path(folder) if folder else None


def postgres_wanted() -> str:
    """YGG_TEST_POSTGRES as one of "require" (1), "off" (0) or "auto" (unset)."""
    value = os.environ.get(POSTGRES_VAR, "")
    modes = {"1": "require", "0": "off", "": "auto"}
    if value not in modes:
        raise pytest.UsageError(f"{POSTGRES_VAR}={value!r}: use 1 (require), 0 (off) or unset")
    return modes[value]


def postgres_off_reason() -> str | None:
    """Why the tests marked `postgres` skip here, or None when they run."""
    if postgres_wanted() == "off":
        return f"turned off by {POSTGRES_VAR}=0"
    return missing_binaries()


def pytest_configure(config: pytest.Config) -> None:
    folder = shared_beads()
    if folder is not None and not sorted(folder.glob("*.jsonl")):
        raise pytest.UsageError(f"{SHARED_BEADS_VAR}={folder} holds no Beads exports (*.jsonl)")
    missing = missing_binaries()
    if postgres_wanted() == "require" and missing is not None:
        raise pytest.UsageError(f"{POSTGRES_VAR}=1 but the PostgreSQL tier cannot run: {missing}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    folder = shared_beads()
    state = f"on ({folder})" if folder else f"off (set {SHARED_BEADS_VAR} to turn it on)"
    reason = postgres_off_reason()
    if reason is not None:
        pg_state = f"off ({reason})"
    elif postgres_wanted() == "require":
        pg_state = f"on, required by {POSTGRES_VAR}=1 ({PG_BIN})"
    else:
        pg_state = f"on ({PG_BIN}; {POSTGRES_VAR}=1 makes it required)"
    return [f"tier of real Beads exports: {state}", f"tier of PostgreSQL tests: {pg_state}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test that uses the cluster `postgres`; skips them all when the tier is off."""
    reason = postgres_off_reason()
    for item in items:
        uses_cluster = any(name in POSTGRES_FIXTURES for name in getattr(item, "fixturenames", ()))
        if uses_cluster and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)
        if reason is not None and item.get_closest_marker("postgres") is not None:
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL tier off: {reason}"))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the session, stopped at its end whatever happened."""
    reason = postgres_off_reason()
    if reason is not None:
        pytest.skip(f"PostgreSQL tier off: {reason}")
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database for this test: its URL; dropped (connections and all) afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


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
