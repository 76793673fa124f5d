"""The task store: one domain-level interface, SQLite underneath."""

from __future__ import annotations

from ygg.store.model import FINISHED, STATUSES, Claim, NewTask, Outcome, Task
from ygg.store.sqlite import SQLiteStore
from ygg.store.sqlite_db import db_path


def open_store(url: str, *, synchronous: str = "full", busy_timeout_s: float = 30.0) -> SQLiteStore:
    """Opens (creating and migrating if needed) the store that `daemon.db` names."""
    return SQLiteStore(db_path(url), synchronous=synchronous, busy_timeout_s=busy_timeout_s)


__all__ = [
    "FINISHED",
    "STATUSES",
    "Claim",
    "NewTask",
    "Outcome",
    "SQLiteStore",
    "Task",
    "open_store",
]
