"""The dashboard's look back: finished tasks by when they finished (both engines' SQL).

Both queries walk the `tasks_finished` index from `since_us` on, so they read the window's
rows and no others; the timeline's is capped too. Placeholders are `?` here; the PostgreSQL
engine swaps in `%s`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ygg.record import Record
from ygg.store.model import US

TYPE_CHECKING = False  # not typing's: every command loads this module (ygg/record.py says why)
if TYPE_CHECKING:
    from typing import Any


class Finished(Record):
    """A finished task as the dashboard's timeline draws it (its last attempt)."""

    task_id: int
    pool: str | None
    status: str
    created_us: int
    started_us: int | None
    finished_us: int


class HistoryRow(Record):
    """Finished tasks of one pool, status and time bucket, with their queue waits."""

    pool: str | None
    status: str
    bucket: int  # (finished_us - since_us) // bucket_us
    tasks: int
    wait_avg_s: float | None  # from submit to the last attempt's start
    wait_max_s: float | None


FINISHED_STATUSES = "('done', 'failed', 'cancelled')"

FINISHED_SINCE = (
    "SELECT id, pool, status, created_us, started_us, finished_us FROM {tasks} "
    "WHERE finished_us >= ? AND finished_us IS NOT NULL "
    f"AND status IN {FINISHED_STATUSES} ORDER BY finished_us DESC LIMIT ?"
)

HISTORY = (
    "SELECT pool, status, (finished_us - ?) / ? AS bucket, count(*), "
    "avg(started_us - created_us), max(started_us - created_us) FROM {tasks} "
    "WHERE finished_us >= ? AND finished_us IS NOT NULL "
    f"AND status IN {FINISHED_STATUSES} GROUP BY pool, status, bucket ORDER BY bucket"
)


def finished_rows(rows: Iterable[Sequence[Any]]) -> list[Finished]:
    return [Finished(int(r[0]), r[1], str(r[2]), int(r[3]), r[4], int(r[5])) for r in rows]


def history_rows(rows: Iterable[Sequence[Any]]) -> list[HistoryRow]:
    return [
        HistoryRow(
            r[0],
            str(r[1]),
            int(r[2]),
            int(r[3]),
            None if r[4] is None else float(r[4]) / US,
            None if r[5] is None else float(r[5]) / US,
        )
        for r in rows
    ]
