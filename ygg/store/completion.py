"""Successes recorded together (Store.complete_many): what each is, and the rule every engine
keeps for the answers."""

from __future__ import annotations

from collections.abc import Sequence

from ygg.record import Record
from ygg.store.model import Outcome

TYPE_CHECKING = False  # not typing's: every command loads the store (ygg/record.py says why)
if TYPE_CHECKING:
    from typing import Any


class Completion(Record):
    """One success for Store.complete_many: the attempt (task and fencing token), its outcome
    and when it ended."""

    task_id: int
    token: int
    outcome: Outcome
    now_us: int


def promoted_first(answers: list[list[str] | None]) -> list[list[str] | None]:
    """complete()'s answers as complete_many gives them: every kind promoted, with the first
    item recorded; None where the token was stale."""
    first = next((i for i, kinds in enumerate(answers) if kinds is not None), None)
    promoted = [kind for kinds in answers if kinds for kind in kinds]
    return [
        promoted if i == first else None if kinds is None else [] for i, kinds in enumerate(answers)
    ]


def complete_each(store: Any, items: Sequence[Completion]) -> list[list[str] | None]:
    """Store.complete_many as complete() for each item, in one transaction (for an engine
    with no round trips to save)."""
    with store.batch():
        return promoted_first([store.complete(*item) for item in items])
