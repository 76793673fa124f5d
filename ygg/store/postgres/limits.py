"""Slot limits: one per pool, for every daemon on the queue, kept where claims decide.

`ygg.pool_limits` holds each pool's limit, who set it and when; every slot row of the pool
carries a copy (`lim`), and a claim takes only free rows whose number is within it (claims.py).
A claim reads the copy from the very row it locks, so it is never stale: a resize updates every
row of the pool, and a row locked by a claim in flight makes the resize wait for that claim
(the claim used the old limit and committed first); a row the resize updated first is seen by
the claim, through its lock, with the new limit. Rows already holding the new limit are not
touched, so re-stating an unchanged limit (every daemon's start) locks no slot row at all.

A resize waits for slot rows at most `RESIZE_LOCK_TIMEOUT` (a batch of another daemon may hold a
row it wants while it waits for one the resize took): past that it is rolled back whole and
run again, as a deadlock would be, and the other transaction goes on.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import errors as pg_errors

from ygg.errors import StoreConflict
from ygg.store.model import PoolLimit, check_limit
from ygg.store.postgres.daemons import DaemonRegistry
from ygg.store.postgres.db import atomic
from ygg.store.postgres.deps import Conn

RESIZE_LOCK_TIMEOUT = "200ms"

_UPSERT = """
INSERT INTO ygg.pool_limits AS p (pool, slot_limit, configured, source, set_by, set_us)
VALUES (%(pool)s, %(limit)s, coalesce(%(configured)s, %(limit)s), %(source)s, %(daemon)s,
    %(now)s)
ON CONFLICT (pool) DO UPDATE SET slot_limit = excluded.slot_limit,
    configured = coalesce(%(configured)s, p.configured), source = excluded.source,
    set_by = excluded.set_by, set_us = excluded.set_us
RETURNING pool, slot_limit, configured, source, set_by, set_us
"""

# A first claim's limit: stored only if nobody stored one meanwhile.
_FIRST = """
INSERT INTO ygg.pool_limits (pool, slot_limit, configured, source, set_by, set_us)
VALUES (%(pool)s, %(limit)s, %(limit)s, 'claim', %(daemon)s, %(now)s)
ON CONFLICT (pool) DO NOTHING
RETURNING pool, slot_limit, configured, source, set_by, set_us
"""


def resize(conn: Conn, sql: str, args: dict[str, object]) -> PoolLimit | None:
    """Stores a pool's limit (`sql`: _UPSERT or _FIRST) and gives its slot rows the new copy.
    The pool's row is locked first, so claims adding slot rows (which share-lock it) never
    add one with the old limit once this has begun."""
    row = conn.execute(
        "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
        (RESIZE_LOCK_TIMEOUT,),
    ).fetchone()
    assert row is not None
    stored = conn.execute(sql, args).fetchone()
    if stored is not None:
        try:
            conn.execute(
                "UPDATE ygg.slots SET lim = %s WHERE pool = %s AND lim IS DISTINCT FROM %s",
                (stored[1], stored[0], stored[1]),
            )
        except pg_errors.LockNotAvailable:
            raise StoreConflict(
                f"resizing pool {stored[0]} waited too long for a slot a claim holds"
            ) from None
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (row[0],))
    return None if stored is None else PoolLimit(*stored)


def first_limit(conn: Conn, pool: str, slots: int, owner: int, now_us: int) -> None:
    """A claim on a pool with no stored limit stores the claimer's slots as its limit."""
    check_limit(pool, slots, slots)
    resize(conn, _FIRST, {"pool": pool, "limit": slots, "daemon": owner, "now": now_us})


class LimitRegistry(DaemonRegistry):
    @atomic
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
        with self.write() as conn:
            args = {
                "pool": pool,
                "limit": limit,
                "configured": configured,
                "source": source,
                "daemon": daemon_id,
                "now": self.now(conn, now_us),
            }
            stored = resize(conn, _UPSERT, args)
            assert stored is not None
            self.notify("wake")  # a raised limit has room for more at once
            self.notify("peers")  # daemons on other machines read the limits again
            return stored

    @atomic
    def declare_slots(self, daemon_id: int, slots: Mapping[str, int]) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM ygg.daemon_slots WHERE daemon = %s", (daemon_id,))
            conn.execute(
                "INSERT INTO ygg.daemon_slots (daemon, pool, slots) "
                "SELECT %s, * FROM unnest(%s::text[], %s::integer[])",
                (daemon_id, list(slots), list(slots.values())),
            )

    def pool_limits(self) -> dict[str, PoolLimit]:
        with self.read() as conn:
            files: dict[str, dict[int, int]] = {}
            for daemon, pool, slots in conn.execute(
                "SELECT daemon, pool, slots FROM ygg.daemon_slots ORDER BY pool, daemon"
            ).fetchall():
                files.setdefault(pool, {})[daemon] = slots
            rows = conn.execute(
                "SELECT pool, slot_limit, configured, source, set_by, set_us "
                'FROM ygg.pool_limits ORDER BY pool COLLATE "C"'
            ).fetchall()
        return {row[0]: PoolLimit(*row)._replace(files=files.get(row[0], {})) for row in rows}
