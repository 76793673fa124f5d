"""The SQLite engine: one WAL file, every domain operation one write transaction."""

from __future__ import annotations

from ygg.store.sqlite.db import db_path
from ygg.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "db_path"]

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from ygg.store.base import Store

    def _implements_store(store: SQLiteStore) -> Store:  # mypy checks the engine against it
        return store
