"""`ygg status`'s one sentence on why the head of a kind's line is not running."""

from __future__ import annotations

from typing import Any

from ygg.ops.waiting import why_waiting
from ygg.store.model import Head

NOW = 1_000_000_000


def pool(name: str, kinds: list[str], *, slots: int = 2, running: int = 0, **kw: Any) -> Any:
    return {
        "name": name,
        "kinds": kinds,
        "slots": slots,
        "running": running,
        "breaker": kw.get("breaker", "closed"),
        "breaker_reason": kw.get("reason"),
    }


def head(**kw: Any) -> Head:
    fields: dict[str, Any] = {
        "kind": "code",
        "task_id": 7,
        "status": "queued",
        "priority": 1,
        "created_us": 0,
        "run_after_us": None,
    }
    fields.update(kw)
    return Head(**fields)


def test_each_reason() -> None:
    gpu = pool("gpu", ["code"])
    assert why_waiting(head(status="waiting", blockers=(3, 4)), [gpu], {}, 1, NOW) == (
        "waiting on task 3, 4"
    )
    assert (
        why_waiting(head(kind="art"), [gpu], {}, 1, NOW) == "no configured pool serves kind 'art'"
    )
    assert why_waiting(head(run_after_us=NOW + 1), [gpu], {}, 1, NOW).startswith(
        "retry backoff until 1970-01-01T00:16:40"
    )
    assert why_waiting(head(), [gpu], {}, 0, NOW) == "no daemon is running on this queue"
    full = pool("gpu", ["code"], running=2)
    assert why_waiting(head(), [full], {}, 1, NOW) == "pool full (gpu 2/2)"
    assert why_waiting(head(), [gpu], {}, 1, NOW) == "next in line; a free slot will take it"


def test_breaker_open_unless_a_fallback_can_take_it() -> None:
    down = pool("gpu", ["code"], breaker="open", reason="gpu cannot be reached")
    spare = pool("cloud", [], running=1)
    assert why_waiting(head(), [down, spare], {}, 1, NOW) == (
        "breaker of gpu is open: gpu cannot be reached"
    )
    assert why_waiting(head(), [down, spare], {"gpu": ["cloud"]}, 1, NOW) == (
        "next in line; a free slot will take it"
    )
    busy = pool("cloud", [], slots=1, running=1)
    assert why_waiting(head(), [down, busy], {"gpu": ["cloud"]}, 1, NOW) == "pool full (cloud 1/1)"
