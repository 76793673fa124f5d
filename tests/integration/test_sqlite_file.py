"""The SQLite file itself: its pragmas, application id, migrations, and refusing files that
are not ours — engine-specific, so not in the contract suite (tests/contract)."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ygg.errors import StoreRefused
from ygg.store import open_store
from ygg.store.model import US, NewTask
from ygg.store.sqlite import db as sqlite_db
from ygg.store.sqlite.schema import APPLICATION_ID, MIGRATIONS

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000 * US


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def schema(path: Path) -> list[tuple[str, str, str, str | None]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return rows


def pragmas(path: Path) -> tuple[int, int, str]:
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("PRAGMA user_version").fetchone()[0],
            conn.execute("PRAGMA application_id").fetchone()[0],
            conn.execute("PRAGMA journal_mode").fetchone()[0],
        )
    finally:
        conn.close()


def test_fresh_file_is_marked_as_ours(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    open_store(str(path)).close()
    assert pragmas(path) == (len(MIGRATIONS), APPLICATION_ID, "wal")
    assert {name for kind, name, _, _ in schema(path) if kind == "table"} >= {
        "tasks",
        "deps",
        "daemons",
    }


def test_migrated_schema_equals_fresh_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "fresh.db"
    open_store(str(fresh)).close()

    stepped = tmp_path / "stepped.db"
    for version in range(1, len(MIGRATIONS) + 1):
        # this build of ygg knows only the first `version` migrations
        monkeypatch.setattr(sqlite_db, "MIGRATIONS", MIGRATIONS[:version])
        store = open_store(str(stepped))
        if version == 1:
            store.enqueue(NewTask(title="old", kind="k"), NOW)
        store.close()
        assert pragmas(stepped)[:2] == (version, APPLICATION_ID)
    monkeypatch.undo()

    store = open_store(str(stepped))  # today's ygg: nothing left to do
    try:
        assert [t.title for t in store.list_tasks()] == ["old"]
    finally:
        store.close()
    assert schema(stepped) == schema(fresh)
    assert pragmas(stepped) == pragmas(fresh) == (len(MIGRATIONS), APPLICATION_ID, "wal")


def test_daemon_rows_from_before_the_ticks_migration_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "q.db"
    monkeypatch.setattr(sqlite_db, "MIGRATIONS", MIGRATIONS[:2])  # a ygg without ticks
    open_store(str(path)).close()
    monkeypatch.undo()
    conn = sqlite3.connect(path)
    with conn:  # the row as that ygg registered it
        daemon_id = conn.execute(
            "INSERT INTO daemons (hostname, pid, pid_started_us, nudge, mode, started_us, "
            "heartbeat_us) VALUES ('skadi', 100, ?, '@ygg-1', 'async', ?, ?) RETURNING id",
            (NOW, NOW, NOW),
        ).fetchone()[0]
    conn.close()
    store = open_store(str(path))
    try:
        [row] = store.daemons()
        assert (row.id, row.pid, row.pid_started_us) == (daemon_id, 100, NOW)
        assert (row.pid_start_ticks, row.boot_id) == (None, None)  # judged by the old rule
    finally:
        store.close()


def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = open_store(str(path))
    store.enqueue(NewTask(title="t", kind="k"), NOW)
    store.close()
    digest, before = sha256(path), schema(path)
    for _ in range(2):
        open_store(str(path)).close()
    assert sha256(path) == digest
    assert schema(path) == before
    assert pragmas(path) == (len(MIGRATIONS), APPLICATION_ID, "wal")


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
        "INSERT INTO notes (body) VALUES ('keep me');"
    )
    conn.close()


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(16384))


def _newer(path: Path) -> None:
    open_store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()


@pytest.mark.parametrize(
    "make", [_foreign, _random_bytes, _newer], ids=["foreign", "random", "newer"]
)
def test_a_file_that_is_not_ours_is_refused_untouched(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    path = tmp_path / "q.db"
    make(path)
    digest = sha256(path)
    for _ in range(2):
        with pytest.raises(StoreRefused) as caught:
            open_store(str(path))
        assert caught.value.exit_code == 65  # EX_DATAERR: distinct from other failures
        assert str(path) in str(caught.value)
        assert "Traceback" not in str(caught.value)
    assert sha256(path) == digest
