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

The limit a claim obeys is the pool's stored limit (limits.py), copied into every slot row as
`lim`: a claim takes only free rows with `n <= lim`, and reads `lim` from the rows it has
locked, so a resize and a claim can never pass each other (limits.py says why). Lowered below
what runs, rows above the limit stay held until their tasks end, and no row is handed out
until what runs is under the limit again (`_usable_after_lowering`).

Slot rows are made as they are first needed (never beyond the pool's limit), so a pool with a
huge limit costs rows only for what really runs at once. A pool with no stored limit yet takes
the claimer's `slots` as its first one.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from typing import Any

from ygg.store.model import Claim
from ygg.store.postgres.deps import Conn
from ygg.store.postgres.limits import first_limit

# Up to `want` free slots of the pool within its limit, locked, with the limit as the locked
# rows say; how many rows the pool has (more may be made); its stored limit as this statement's
# snapshot saw it (NULL: none yet) — a hint for making rows, never what a claim obeys.
_FREE = """
WITH free AS MATERIALIZED (
    SELECT n, lim FROM ygg.slots
    WHERE pool = %(pool)s AND task_id IS NULL AND n <= lim
    ORDER BY n LIMIT %(want)s
    FOR UPDATE SKIP LOCKED)
SELECT ARRAY(SELECT n FROM free ORDER BY n), (SELECT min(lim) FROM free),
  (SELECT coalesce(max(n), 0) FROM ygg.slots WHERE pool = %(pool)s),
  (SELECT slot_limit FROM ygg.pool_limits WHERE pool = %(pool)s)
"""

# The candidates are materialised with their LIMIT and row locks before the UPDATE takes them:
# inlined, the planner may run the limiting subquery once per row and take more than LIMIT
# (Oban v2.15's note). They are then looked up by key: joined instead, a generic plan (which
# cannot know how few there are) may merge them with a walk of every task by id, done ones
# included. The tasks taken are paired with the slots, most urgent to lowest slot.
# Nothing is taken while a slot above the limit is held (the limit was lowered while it ran):
# `over` says so, in this statement's snapshot, which is younger than the slot locks.
# `{ready}` picks the rows the locking walk may consider (_PER_KIND or _ANY_KIND); `picked`
# comes back with every row: how many candidates there were.
_TAKE = """
WITH over AS MATERIALIZED (
    SELECT %(check)s AND EXISTS (SELECT 1 FROM ygg.slots
        WHERE pool = %(pool)s AND n > %(lim)s AND task_id IS NOT NULL) AS held
), {ready}, ready AS MATERIALIZED (
    SELECT id FROM ygg.tasks
    WHERE {among}
      AND status = 'queued' AND (run_after_us IS NULL OR run_after_us <= %(now)s)
      AND NOT (SELECT held FROM over)
    ORDER BY priority, id
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE ygg.tasks AS t SET status = 'running', pool = %(pool)s, owner = %(owner)s,
        attempts = t.attempts + 1, token = t.token + 1, lease_expires_us = %(lease)s,
        started_us = %(now)s, run_after_us = NULL
    WHERE t.id = ANY(ARRAY(SELECT id FROM ready))
    RETURNING t.id, t.token, t.kind, t.priority, t.title, t.prompt, t.params, t.attempts,
        t.max_attempts, t.timeout_s, t.created_us
), paired AS MATERIALIZED (
    SELECT ranked.id, free.n
    FROM (SELECT id, row_number() OVER (ORDER BY priority, id) AS rank FROM taken) AS ranked
    JOIN unnest(%(free)s::integer[]) WITH ORDINALITY AS free(n, rank) USING (rank)
), held AS (
    UPDATE ygg.slots AS s SET task_id = paired.id
    FROM paired WHERE s.pool = %(pool)s AND s.n = paired.n
)
SELECT over.held, (SELECT count(*) FROM picked), taken.*
FROM over LEFT JOIN taken ON true ORDER BY priority, id
"""

# The first `n` ready tasks of each kind, one range of the ready index (kind, priority, id)
# per kind, read without locks; then the `n` most urgent of them are locked, by primary key,
# skipping any another claim holds. Without this the planner walks every queued task in
# (priority, id) order and skips the other kinds' ones, more with every claim made (5 times the
# cost at 1M queued after 1,000 claims). A row locked elsewhere can leave fewer than `n`:
# then `claim` takes the rest with _ANY_KIND, which walks on past the locked rows.
_PER_KIND = _TAKE.replace(
    "{ready}",
    """picked AS MATERIALIZED (
    SELECT c.id FROM unnest(%(kinds)s::text[]) AS k(kind) CROSS JOIN LATERAL (
        SELECT id FROM ygg.tasks
        WHERE status = 'queued' AND kind = k.kind
          AND (run_after_us IS NULL OR run_after_us <= %(now)s)
        ORDER BY priority, id LIMIT %(n)s) AS c
)""",
).replace("{among}", "id = ANY(ARRAY(SELECT id FROM picked))")

# Every ready task of the kinds, in (priority, id) order, past rows another claim has locked.
_ANY_KIND = _TAKE.replace("{ready}", "picked AS (SELECT NULL::bigint AS id WHERE false)").replace(
    "{among}", "kind = ANY(%(kinds)s)"
)


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
    """Up to `limit` of the most urgent ready tasks of `kinds` for `pool`, within its limit."""
    free, lim = _lock_free_slots(conn, pool, limit, slots, owner, now_us)
    if not free:
        return []
    args = {
        "kinds": list(kinds),
        "now": now_us,
        "pool": pool,
        "owner": owner,
        "lease": lease_until_us,
        "lim": lim,
        "check": True,
    }
    rows = _take(conn, args, free)
    if rows[0][0]:  # lowered below what runs: only slots 1..c may be taken now
        usable = _usable_after_lowering(conn, pool, lim)
        free = [n for n in free if n <= usable]
        if not free:
            return []
        args["check"] = False
        rows = _take(conn, args, free)
    return [
        Claim(r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]), r[9], r[10], r[11], r[12])
        for r in rows
        if r[2] is not None
    ]


def _take(conn: Conn, args: dict[str, object], free: list[int]) -> list[tuple[Any, ...]]:
    """Takes up to len(free) tasks into the slots `free`: the rows of _TAKE."""
    rows = conn.execute(_PER_KIND, {**args, "n": len(free), "free": free}).fetchall()
    held, picked = rows[0][0], rows[0][1]
    taken = [r for r in rows if r[2] is not None]
    if held or len(taken) == len(free) or picked <= len(taken):
        return rows  # all taken, or every candidate was: no ready task was passed over
    # Candidates were locked or taken by another claim meanwhile: the rest from a walk past them.
    rest = free[len(taken) :]
    more = conn.execute(_ANY_KIND, {**args, "n": len(rest), "free": rest}).fetchall()
    more_taken = [r for r in more if r[2] is not None]
    if not (taken or more_taken):
        return rows
    return sorted(taken + more_taken, key=lambda r: (r[5], r[2]))  # (priority, id)


def _lock_free_slots(
    conn: Conn, pool: str, want: int, slots: int, owner: int, now_us: int
) -> tuple[list[int], int]:
    """Locks up to `want` free slots of `pool` within its limit; their numbers and the limit."""
    args = {"pool": pool, "want": want}
    free, lim, top, hint = conn.execute(_FREE, args).fetchone() or ([], None, 0, None)
    if hint is None:  # no stored limit yet (or rows from before limits were stored)
        first_limit(conn, pool, slots, owner, now_us)
        free, lim, top, hint = conn.execute(_FREE, args).fetchone() or ([], None, 0, None)
    if len(free) < want and top < (hint or 0):
        stored = _stored_limit(conn, pool)
        if stored is not None and (lim is None or lim == stored):
            lim = stored
            free += _add_slots(conn, pool, top + 1, min(stored, top + want - len(free)), stored)
    return free, lim or 0


def _stored_limit(conn: Conn, pool: str) -> int | None:
    """The pool's limit, share-locked so that no resize begins before this claim ends (rows
    made now carry it). None if a resize holds it now: this claim makes no rows."""
    row = conn.execute(
        "SELECT slot_limit FROM ygg.pool_limits WHERE pool = %s FOR SHARE SKIP LOCKED", (pool,)
    ).fetchone()
    return None if row is None else int(row[0])


def _usable_after_lowering(conn: Conn, pool: str, slots: int) -> int:
    """Slots above the limit are still held: the limit was lowered while they ran. Only slots
    1..c may be taken, for the largest c at which c plus the slots held above c is within the
    limit, so what runs never exceeds it. (Held slots only come free meanwhile; no claim under
    this limit takes one above c: a stale view errs on the safe side.)"""
    rows = conn.execute(
        "SELECT n FROM ygg.slots WHERE pool = %s AND task_id IS NOT NULL", (pool,)
    ).fetchall()
    held = sorted(row[0] for row in rows)

    def running_with(usable: int) -> int:  # grows with `usable`: a binary search finds it
        return usable + len(held) - bisect.bisect_right(held, usable)

    low, high = 0, slots  # 0: nothing may start until enough of the held slots come free
    while low < high:
        middle = (low + high + 1) // 2
        if running_with(middle) <= slots:
            low = middle
        else:
            high = middle - 1
    return low


def _add_slots(conn: Conn, pool: str, first: int, last: int, lim: int) -> list[int]:
    """Makes the slot rows `first`..`last` of `pool`, with its limit `lim`. Rows this
    transaction inserts are its own until it commits; one that another claim is inserting at
    the same moment is waited for, then left to it (ON CONFLICT DO NOTHING)."""
    if last < first:
        return []
    added = conn.execute(
        "INSERT INTO ygg.slots (pool, n, lim) SELECT %s, g, %s "
        "FROM generate_series(%s::integer, %s::integer) AS g ON CONFLICT DO NOTHING RETURNING n",
        (pool, lim, first, last),
    ).fetchall()
    return sorted(r[0] for r in added)


def free_slots(conn: Conn, task_ids: Sequence[int]) -> None:
    """Frees the slots of tasks that just left `running` (in the transaction that moved them)."""
    if task_ids:
        conn.execute(
            "UPDATE ygg.slots SET task_id = NULL WHERE task_id = ANY(%s)", (list(task_ids),)
        )
