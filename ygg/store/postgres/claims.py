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

The claim itself runs on the server, in one round trip (`ygg.claim`, functions.py, which says
how the statements inside keep these rules); this module mends what it reports missing.

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

# One round trip on the common path; `ygg.claim` (functions.py) says what else it needs.
_CLAIM = (
    "SELECT * FROM ygg.claim(%s, %s::text[], %s::integer, %s::bigint, %s::bigint, %s::bigint, "
    "%s, %s::integer)"
)
_MENDS = 4  # 'limit', then 'rows', then 'held', then the claim: each is mended at most once


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
    grow, need = True, None
    usable: int | None = None
    for _ in range(_MENDS):
        args = (pool, list(kinds), limit, now_us, owner, lease_until_us, grow, usable)
        rows = conn.execute(_CLAIM, args).fetchall()
        need = rows[0][0] if rows else None
        if need is None:
            return sorted(map(_claim_of, rows), key=_urgency)  # a walk's come after the rest
        _, lim, top, short = rows[0][:4]
        if need == "limit":  # no stored limit yet (or rows from before limits were stored)
            first_limit(conn, pool, slots, owner, now_us)
        elif need == "rows":
            _make_rows(conn, pool, top, short, lim)
            grow = False
        else:  # "held": lowered below what runs, only slots 1..usable may be taken now
            usable, grow = _usable_after_lowering(conn, pool, lim), False
            if not usable:
                return []
    raise AssertionError(f"the claim of pool {pool} still needed {need!r}")


def _claim_of(r: tuple[Any, ...]) -> Claim:
    """A task row of `ygg.claim`, after its four columns that say what it needs."""
    return Claim(r[4], r[5], r[6], r[7], r[8], r[9], json.loads(r[10]), r[11], r[12], r[13], r[14])


def _urgency(claim: Claim) -> tuple[int, int]:
    return claim.priority, claim.task_id


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


def _make_rows(conn: Conn, pool: str, top: int, short: int, lim: int | None) -> None:
    """Makes up to `short` slot rows above `top`, with the stored limit, never past it; none
    while a resize holds the limit, or if the free rows' limit `lim` is not the stored one (a
    resize is under way). Rows this transaction inserts are its own until it commits; one that
    another claim is inserting at the same moment is waited for, then left to it."""
    stored = _stored_limit(conn, pool)
    if stored is None or (lim is not None and lim != stored):
        return
    conn.execute(
        "INSERT INTO ygg.slots (pool, n, lim) SELECT %s, g, %s "
        "FROM generate_series(%s::integer, %s::integer) AS g ON CONFLICT DO NOTHING",
        (pool, stored, top + 1, min(stored, top + short)),
    )


def free_slots(conn: Conn, task_ids: Sequence[int]) -> None:
    """Frees the slots of tasks that just left `running` (in the transaction that moved them)."""
    if task_ids:
        conn.execute(
            "UPDATE ygg.slots SET task_id = NULL WHERE task_id = ANY(%s)", (list(task_ids),)
        )
