"""Successes recorded in one round trip, however many there are (Store.complete_many).

The daemon's store thread gathers the completions that arrive together (writer.submit_each):
at thousands of short tasks a second, statements per task were most of the time spent waiting
on the server. The rules (`ygg.record_outcomes`, functions.py): each update is fenced by its
claim's token and frees its slot only if it matched; the dependents are looked up and locked by
a statement after the one that finished their parents (deps.py says why).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from ygg.store.completion import Completion
from ygg.store.model import storable_us
from ygg.store.postgres import deps
from ygg.store.postgres.deps import Conn

# The outcomes, then their waiting dependents, locked: one round trip (functions.py).
_RECORD = "SELECT * FROM ygg.record_outcomes(%s::jsonb)"


def _as_json(items: Sequence[Completion], finished_us: Sequence[int]) -> str:
    """The items as one JSON array of rows, in id order (two calls finishing overlapping sets
    lock their rows in the same order, so they cannot deadlock): one parameter, encoded by one
    C call (eight arrays were dumped element by element, a quarter of the store thread's
    time)."""
    rows = []
    for item, finished in sorted(zip(items, finished_us, strict=True), key=_task_id):
        out = item.outcome
        first_us, generation_us = storable_us(out.first_token_s), storable_us(out.generation_s)
        rows.append([item.task_id, item.token, out.result, out.tokens_in, out.tokens_out,
                     first_us, generation_us, finished])  # fmt: skip
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def _task_id(pair: tuple[Completion, int]) -> int:
    return pair[0].task_id


class Recorded(NamedTuple):
    """complete_many's answers, and whether anyone but the completing daemon may need to hear
    of them (`wake_others`)."""

    answers: list[list[str] | None]
    wake_others: bool


def wakes_others(owners: set[int | None], daemons: Sequence[int]) -> bool:
    """Whether the WAKE after these completions could tell anyone something new. The daemon
    that records its own successes frees their slots and wakes the kinds they promoted itself;
    a WAKE serves only other daemons (sharing the pool's slots, or serving the promoted kinds).
    With no other daemon registered on the queue it is one round trip for nobody. A daemon
    registering meanwhile claims once it is up, so it sees what committed before; a slot freed
    between its first claim and its registration reaching us is found by its safety poll (a
    WAKE is a hint, never what a guarantee rests on)."""
    if len(owners) != 1 or None in owners:
        return True
    return any(daemon not in owners for daemon in daemons)


def complete_many(conn: Conn, items: Sequence[Completion], finished_us: Sequence[int]) -> Recorded:
    """Records `items` (already storable), finished at `finished_us` (one per item); as
    Store.complete_many answers, and whether other daemons should hear of it."""
    row = conn.execute(_RECORD, (_as_json(items, finished_us),)).fetchone()
    assert row is not None
    finished, owners, daemons, dependents = row
    if not finished:
        return Recorded([None] * len(items), False)
    done = set(finished)
    promoted = deps.promote_locked(conn, dependents)
    answers: list[list[str] | None] = []
    for item in items:
        if item.task_id not in done:
            answers.append(None)
        else:
            answers.append(promoted)
            promoted = []  # the kinds go with the first item recorded
    return Recorded(answers, wakes_others(set(owners), daemons))
