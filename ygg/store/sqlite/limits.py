"""Slot limits: one per pool, for every daemon on the queue, and what each daemon's file says.

A claim reads its pool's limit under the write lock it counts the running tasks under
(store.py), so a change is seen by the very next claim of every daemon.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from ygg.store.model import PoolLimit, check_limit
from ygg.store.sqlite.daemons import DaemonRegistry
from ygg.store.sqlite.db import reads

_UPSERT = """
INSERT INTO pool_limits (pool, slot_limit, configured, source, set_by, set_us)
VALUES (:pool, :limit, coalesce(:configured, :limit), :source, :daemon, :now)
ON CONFLICT (pool) DO UPDATE SET slot_limit = excluded.slot_limit,
    configured = coalesce(:configured, pool_limits.configured), source = excluded.source,
    set_by = excluded.set_by, set_us = excluded.set_us
RETURNING pool, slot_limit, configured, source, set_by, set_us
"""


class LimitRegistry(DaemonRegistry):
    def set_pool_limit(
        self,
        pool: str,
        limit: int,
        *,
        daemon_id: int | None,
        now_us: int,
        configured: int | None = None,
        source: str = "config",
    ) -> PoolLimit:
        check_limit(pool, limit, configured)
        args = {
            "pool": pool,
            "limit": limit,
            "configured": configured,
            "source": source,
            "daemon": daemon_id,
            "now": now_us,
        }
        with self.write() as conn:
            row = conn.execute(_UPSERT, args).fetchone()
        return PoolLimit(*row)

    @staticmethod
    def first_limit(
        conn: sqlite3.Connection, pool: str, slots: int, owner: int, now_us: int
    ) -> None:
        """A claim on a pool with no stored limit stores the claimer's slots as its limit."""
        check_limit(pool, slots, slots)
        conn.execute(
            "INSERT OR IGNORE INTO pool_limits (pool, slot_limit, configured, source, set_by, "
            "set_us) VALUES (?, ?, ?, 'claim', ?, ?)",
            (pool, slots, slots, owner, now_us),
        )

    def declare_slots(self, daemon_id: int, slots: Mapping[str, int]) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM daemon_slots WHERE daemon = ?", (daemon_id,))
            conn.executemany(
                "INSERT INTO daemon_slots (daemon, pool, slots) VALUES (?, ?, ?)",
                [(daemon_id, pool, n) for pool, n in slots.items()],
            )

    @reads
    def pool_limits(self) -> dict[str, PoolLimit]:
        files: dict[str, dict[int, int]] = {}
        for daemon, pool, slots in self.conn.execute(
            "SELECT daemon, pool, slots FROM daemon_slots ORDER BY pool, daemon"
        ):
            files.setdefault(pool, {})[daemon] = slots
        rows = self.conn.execute(
            "SELECT pool, slot_limit, configured, source, set_by, set_us FROM pool_limits "
            "ORDER BY pool"
        ).fetchall()
        return {row[0]: PoolLimit(*row)._replace(files=files.get(row[0], {})) for row in rows}
