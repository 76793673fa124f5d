"""A daemon's view of the stored limits, and how `ygg status` shows them."""

from __future__ import annotations

from structlog.testing import capture_logs

from ygg.dispatch.limits import LimitView
from ygg.ops.status import disagreement, limit_fields
from ygg.store.model import US, PoolLimit

NOW = 1_700_000_000 * US


def disagreements(events: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (e["pool"], e["limit"], e["configured"], e["slots"], e["set_by"])
        for e in events
        if e["event"] == "pool_limit_disagrees"
    ]


def test_a_disagreeing_file_is_said_once_per_change_not_per_reading() -> None:
    view = LimitView()
    ours = {"gpu": 3, "cpu": 1}
    set_by_two = {"gpu": PoolLimit("gpu", 1, 1, "config", 2, NOW)}
    with capture_logs() as events:
        assert view.follow(set_by_two, ours) == {"gpu": 1}  # cpu has no stored limit yet
        assert view.follow(set_by_two, ours) == {"gpu": 1}
        moved = {"gpu": PoolLimit("gpu", 2, 1, "adaptive", 2, NOW + 1)}
        assert view.follow(moved, ours) == {"gpu": 2}  # adaptive moves: same file behind it
        agreed = {"gpu": PoolLimit("gpu", 3, 3, "config", 1, NOW + 2)}
        assert view.follow(agreed, ours) == {"gpu": 3}
        assert view.follow(set_by_two, ours) == {"gpu": 1}  # set again by two: a change
        assert view.follow(set_by_two, {"gpu": 2, "cpu": 1}) == {"gpu": 1}  # our reload
    assert disagreements(events) == [
        ("gpu", 1, 1, 3, 2),
        ("gpu", 1, 1, 3, 2),
        ("gpu", 1, 1, 2, 2),
    ]


def test_status_fields_show_the_stored_limit_and_who_disagrees() -> None:
    stored = PoolLimit("gpu", 1, 1, "config", 2, NOW, files={1: 3, 2: 1, 9: 4})
    fields = limit_fields(stored, 3, live={1, 2})  # 9 is gone: not shown
    assert fields == {
        "limit": 1,
        "limit_source": "config",
        "limit_set_by": 2,
        "limit_set_at": "2023-11-14T22:13:20.000000Z",
        "configured": {"1": 3, "2": 1},
        "disagrees": [1],
    }
    line = disagreement({"name": "gpu", **fields})
    assert line == (
        "limit of gpu is 1 (config, set by daemon #2 at 2023-11-14T22:13:20.000000Z); "
        "the files disagree: #1 says 3"
    )
    assert limit_fields(None, 3, live=set())["limit"] == 3  # none stored: the file's slots
