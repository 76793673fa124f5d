"""The dashboard's look back, from the store's finished tasks: per pool, throughput and queue
wait over the last hour (`GET /api/history`), and the attempts of the last minutes for the
timeline's lanes (`GET /api/timeline`). Both reads are bounded (see ygg/store/history.py)."""

from __future__ import annotations

from typing import Any

from ygg.errors import InvalidInput
from ygg.store.history import Finished, HistoryRow
from ygg.store.model import US, iso

BUCKETS = 12  # an hour in five-minute bars
TIMELINE_LIMIT = 2000  # attempts drawn at most: a busy minute has more than a page can show
MAX_MINUTES = 24 * 60


def minutes_of(text: str | None, default: int) -> int:
    value = text or str(default)
    if not value.isdigit() or not 1 <= int(value) <= MAX_MINUTES:
        raise InvalidInput(
            f"minutes must be a whole number from 1 to {MAX_MINUTES}, not {value!r}."
        )
    return int(value)


def window(now_us: int, minutes: int) -> tuple[int, int]:
    """(since_us, bucket_us): `minutes` back from now, in BUCKETS bars."""
    span_us = minutes * 60 * US
    return now_us - span_us, span_us // BUCKETS


def history_document(
    rows: list[HistoryRow], now_us: int, since_us: int, bucket_us: int
) -> dict[str, Any]:
    """Per pool, one entry per bar (oldest first): tasks finished by status, and the queue
    wait (submit to the start of the last attempt) as a mean and a maximum."""
    pools: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        bars = pools.setdefault(
            row.pool or "", [_bar(since_us, bucket_us, b) for b in range(BUCKETS)]
        )
        if not 0 <= row.bucket < BUCKETS:
            continue  # finished in the instant since `now_us` was read
        bar = bars[row.bucket]
        bar[row.status] = bar.get(row.status, 0) + row.tasks
        if row.wait_avg_s is not None:
            waited = bar["_waited"]
            bar["_waited"] = (waited[0] + row.wait_avg_s * row.tasks, waited[1] + row.tasks)
            bar["wait_max_s"] = max(bar["wait_max_s"] or 0.0, row.wait_max_s or 0.0)
    for bars in pools.values():
        for bar in bars:
            total_s, tasks = bar.pop("_waited")
            bar["wait_avg_s"] = round(total_s / tasks, 3) if tasks else None
    return {
        "now": iso(now_us),
        "since": iso(since_us),
        "bucket_s": bucket_us / US,
        "pools": pools,
    }


def _bar(since_us: int, bucket_us: int, index: int) -> dict[str, Any]:
    return {
        "start": iso(since_us + index * bucket_us),
        "done": 0,
        "failed": 0,
        "cancelled": 0,
        "wait_avg_s": None,
        "wait_max_s": None,
        "_waited": (0.0, 0),
    }


def timeline_document(rows: list[Finished], now_us: int, since_us: int) -> dict[str, Any]:
    """The attempts finished since `since_us`, oldest first; the running ones come from
    `/status`. Times are milliseconds since the epoch, for drawing."""
    return {
        "now_ms": now_us // 1000,
        "since_ms": since_us // 1000,
        "limit": TIMELINE_LIMIT,
        "attempts": [
            {
                "id": r.task_id,
                "pool": r.pool,
                "status": r.status,
                "started_ms": (r.started_us or r.finished_us) // 1000,
                "finished_ms": r.finished_us // 1000,
            }
            for r in reversed(rows)
        ],
    }
