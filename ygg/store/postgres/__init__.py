"""The PostgreSQL engine: psycopg 3, every domain operation one transaction, slot limits held
by rows (claims.py), all tables in the schema `ygg`. Opened by `postgresql://` URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ygg.store.postgres.store import PostgresStore, open_postgres

__all__ = ["PostgresStore", "open_postgres"]

if TYPE_CHECKING:
    from ygg.store.base import Store

    def _implements_store(store: PostgresStore) -> Store:  # mypy checks the engine against it
        return store
