"""The dashboard's look back as documents: bars per pool, mean waits weighted by tasks."""

from __future__ import annotations

import pytest

from ygg.errors import InvalidInput
from ygg.ops.web.history import BUCKETS, history_document, minutes_of, timeline_document, window
from ygg.store.history import Finished, HistoryRow
from ygg.store.model import US

NOW = 1_700_000_000 * US


def test_bars_per_pool_with_counts_by_status_and_weighted_waits() -> None:
    since, bucket = window(NOW, 60)
    assert (NOW - since, bucket) == (3600 * US, 300 * US)
    rows = [
        HistoryRow("gpu", "done", 11, 3, 2.0, 5.0),
        HistoryRow("gpu", "failed", 11, 1, 6.0, 6.0),
        HistoryRow("cpu", "cancelled", 0, 2, None, None),
        HistoryRow("gpu", "done", BUCKETS, 1, 1.0, 1.0),  # finished after `now` was read
    ]
    document = history_document(rows, NOW, since, bucket)
    assert document["bucket_s"] == 300
    gpu, cpu = document["pools"]["gpu"], document["pools"]["cpu"]
    assert len(gpu) == len(cpu) == BUCKETS
    assert gpu[11] | {"start": None} == {
        "start": None,
        "done": 3,
        "failed": 1,
        "cancelled": 0,
        "wait_avg_s": 3.0,
        "wait_max_s": 6.0,
    }
    assert gpu[0]["done"] == 0 and gpu[0]["wait_avg_s"] is None
    assert (cpu[0]["cancelled"], cpu[0]["wait_avg_s"]) == (2, None)


def test_the_timeline_is_oldest_first_in_milliseconds() -> None:
    rows = [
        Finished(2, "gpu", "failed", NOW, NOW + 2 * US, NOW + 3 * US),
        Finished(1, "gpu", "cancelled", NOW, None, NOW + US),
    ]
    document = timeline_document(rows, NOW + 4 * US, NOW)
    assert [(a["id"], a["started_ms"], a["finished_ms"]) for a in document["attempts"]] == [
        (1, (NOW + US) // 1000, (NOW + US) // 1000),  # never started: a mark where it ended
        (2, (NOW + 2 * US) // 1000, (NOW + 3 * US) // 1000),
    ]


@pytest.mark.parametrize("text", ["0", "-5", "1441", "ten", "1.5"])
def test_minutes_out_of_range_are_refused_in_one_sentence(text: str) -> None:
    with pytest.raises(InvalidInput, match="minutes must be a whole number"):
        minutes_of(text, 60)
    assert minutes_of(None, 60) == 60 and minutes_of("1440", 60) == 1440
