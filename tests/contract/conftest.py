"""The stores the contract suite runs against.

Every test in tests/contract that takes `store` (or `store_url`) runs once per engine in
ENGINES: SQLite in a temp file, PostgreSQL in a fresh database of the session's throwaway
cluster (marked `postgres`: it skips, or fails under YGG_TEST_POSTGRES=1, where the server's
binaries are missing). The tests pass explicit times, so PostgreSQL is opened on the caller's
clock here; the daemon's default is the database's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ygg.store import Store, open_store

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The `daemon.db` value of a fresh, empty queue."""
    engine: str = request.param
    if engine == "sqlite":
        return str(tmp_path / "q.db")
    if engine == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    raise AssertionError(f"no such engine: {engine}")


# Running tasks and the slots they hold, in one: every way out of `running` frees the slot.
SLOTS_MISMATCH = """
SELECT t.id, t.status, t.pool, s.pool, s.n FROM ygg.tasks AS t
FULL JOIN ygg.slots AS s ON s.task_id = t.id
WHERE (t.status = 'running' OR s.task_id IS NOT NULL)
  AND (t.id IS NULL OR s.task_id IS NULL OR t.status <> 'running' OR s.pool <> t.pool)
"""


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url, clock="caller")
    try:
        yield opened
    finally:
        opened.close()
    if store_url.startswith("postgresql://"):
        assert slot_mismatches(store_url) == []


def slot_mismatches(url: str) -> list[tuple[object, ...]]:
    """Running tasks without their slot, and slots held by tasks not running (PostgreSQL)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(SLOTS_MISMATCH).fetchall()
