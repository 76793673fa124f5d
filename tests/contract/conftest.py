"""The stores the contract suite runs against.

Every test in tests/contract that takes `store` (or `store_url`) runs once per engine in
ENGINES; a future PostgreSQL engine is added here, not in the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ygg.store import Store, open_store

ENGINES = ["sqlite"]


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The `daemon.db` value of a fresh, empty queue."""
    engine: str = request.param
    if engine == "sqlite":
        return str(tmp_path / "q.db")
    raise AssertionError(f"no such engine: {engine}")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
