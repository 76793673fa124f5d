"""Claims under slot limits that hold across every daemon on every machine.

A pool's limit is enforced by rows, not by counting: `ygg.slots` holds numbered rows 1..n per
pool, each free (task_id NULL) or naming the running task that holds it. A claim locks free
slot rows `FOR UPDATE SKIP LOCKED`, then takes at most that many ready tasks, and writes each
task's id into its slot in the same transaction. Two claimers can never hold the same slot row,
and a slot whose holder committed is re-checked under the lock, so no snapshot can make a full
pool look free. (Counting running tasks in the claiming statement's snapshot cannot do this:
a concurrent claim not yet committed is invisible to the count; pgqueuer's issue #761.)

Why slot rows rather than a unique index on (pool, slot) over running tasks (pgqueuer #777,
procrastinate): a unique-index race is lost with an error that aborts the transaction, and a
daemon's claim shares its transaction with a batch of other operations; a skipped row costs
nothing. Every way a task leaves `running` frees its slot in the same transaction, and only
when the fenced update of the task succeeded, so a zombie's late write frees nothing.

Slot rows are made as they are first needed (never beyond the pool's `slots`), so a pool with
a huge limit costs rows only for what really runs at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ygg.store.model import Claim
from ygg.store.postgres.deps import Conn

# The candidates are materialised with their LIMIT and row locks before the UPDATE joins them:
# inlined, the planner may run the limiting subquery once per row and take more than LIMIT
# (Oban v2.15's note).
_TAKE = """
WITH ready AS MATERIALIZED (
    SELECT id FROM ygg.tasks
    WHERE status = 'queued' AND kind = ANY(%(kinds)s)
      AND (run_after_us IS NULL OR run_after_us <= %(now)s)
    ORDER BY priority, id
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE ygg.tasks AS t SET status = 'running', pool = %(pool)s, owner = %(owner)s,
    attempts = t.attempts + 1, token = t.token + 1, lease_expires_us = %(lease)s,
    started_us = %(now)s, run_after_us = NULL
FROM ready WHERE t.id = ready.id
RETURNING t.id, t.token, t.kind, t.priority, t.title, t.prompt, t.params, t.attempts,
    t.max_attempts, t.timeout_s, t.created_us
"""


def claim(
    conn: Conn,
    pool: str,
    kinds: Sequence[str],
    limit: int,
    *,
    slots: int,
    owner: int,
    lease_until_us: int,
    now_us: int,
) -> list[Claim]:
    """Up to `limit` of the most urgent ready tasks of `kinds` for `pool`, within its slots."""
    free = _lock_free_slots(conn, pool, slots, limit)
    if not free:
        return []
    rows = conn.execute(
        _TAKE,
        {
            "kinds": list(kinds),
            "now": now_us,
            "n": len(free),
            "pool": pool,
            "owner": owner,
            "lease": lease_until_us,
        },
    ).fetchall()
    claims = sorted(
        (
            Claim(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], r[10])
            for r in rows
        ),
        key=lambda c: (c.priority, c.task_id),
    )
    if claims:
        conn.execute(
            "UPDATE ygg.slots SET task_id = v.task_id "
            "FROM unnest(%s::integer[], %s::bigint[]) AS v(n, task_id) "
            "WHERE slots.pool = %s AND slots.n = v.n",
            (free[: len(claims)], [c.task_id for c in claims], pool),
        )
    return claims


def _lock_free_slots(conn: Conn, pool: str, slots: int, limit: int) -> list[int]:
    """Locks up to `limit` free slots of `pool` among 1..slots; their numbers."""
    row = conn.execute(
        "SELECT count(*) FROM ygg.slots WHERE pool = %s AND n > %s AND task_id IS NOT NULL",
        (pool, slots),
    ).fetchone()
    # Held above the limit: the pool's slots were lowered while they ran; they still count.
    want = min(limit, slots - (row[0] if row else 0))
    if want < 1:
        return []
    free = [
        r[0]
        for r in conn.execute(
            "SELECT n FROM ygg.slots WHERE pool = %s AND n <= %s AND task_id IS NULL "
            "ORDER BY n LIMIT %s FOR UPDATE SKIP LOCKED",
            (pool, slots, want),
        )
    ]
    if len(free) < want:
        free += _add_slots(conn, pool, slots, want - len(free))
    return free


def _add_slots(conn: Conn, pool: str, slots: int, count: int) -> list[int]:
    """Makes up to `count` more slot rows for `pool`, never numbered past `slots`. Rows this
    transaction inserts are its own until it commits; one another claim is inserting at the
    same moment is waited for, then left to it (ON CONFLICT DO NOTHING)."""
    row = conn.execute("SELECT coalesce(max(n), 0) FROM ygg.slots WHERE pool = %s", (pool,))
    top = row.fetchone()
    first = (top[0] if top else 0) + 1
    last = min(slots, first + count - 1)
    if last < first:
        return []
    added = conn.execute(
        "INSERT INTO ygg.slots (pool, n) SELECT %s, g "
        "FROM generate_series(%s::integer, %s::integer) AS g ON CONFLICT DO NOTHING RETURNING n",
        (pool, first, last),
    ).fetchall()
    return sorted(r[0] for r in added)


def free_slots(conn: Conn, task_ids: Sequence[int]) -> None:
    """Frees the slots of tasks that just left `running` (in the transaction that moved them)."""
    if task_ids:
        conn.execute(
            "UPDATE ygg.slots SET task_id = NULL WHERE task_id = ANY(%s)", (list(task_ids),)
        )
