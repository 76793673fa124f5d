"""The event hub: batches per flush, a pool's latest state only, one encoding for every
stream, and a client whose backlog overflows is dropped."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ygg.ops.web.events import EventHub, frame, pool_event, task_event, task_frame


def decoded(batch: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in batch.split(b"\n") if line.startswith(b"data: ")]


def test_frames_keep_every_event_whatever_its_strings_hold() -> None:
    events = [
        task_event(1, "running", pool="p", attempt=1, kind="general"),
        {"type": "queue"},
        task_event(2, "failed", error='boom },{"type": "task" ünïcode\n'),
        {"type": "odd", "nested": [{"type": "inner"}]},
        pool_event("p", 1, 2, "open", "host down"),
    ]
    encoded = "".join(frame(e) for e in events).encode()
    assert decoded(encoded) == events
    assert [e.split(b"\n")[0] for e in encoded.split(b"\n\n")[:-1]] == [
        b"event: task",
        b"event: queue",
        b"event: task",
        b"event: odd",
        b"event: pool",
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"pool": "p", "attempt": 2, "kind": "general"},
        {"kind": 'odd "kind"\nwith ünïcode \u2028 and \\'},
        {"pool": "p", "attempt": 0},
    ],
)
@pytest.mark.parametrize("status", ["running", "done", None])
def test_a_task_frame_is_the_frame_of_its_event(status: str | None, fields: dict[str, Any]) -> None:
    for _ in range(2):  # the second time from the cache of encoded strings (None: left out)
        assert task_frame(7, status, **fields) == frame(task_event(7, status, **fields))


def test_a_flush_hands_one_batch_to_every_stream_with_the_latest_pool_state() -> None:
    async def scenario() -> None:
        hub = EventHub(flush_s=3600)  # flushed by hand below
        first, second = hub.subscribe(), hub.subscribe()
        running = [0]
        for task_id in (1, 2, 3):
            running[0] += 1
            hub.publish(task_event(task_id, "running"))
            hub.publish_pool("p", lambda: pool_event("p", running[0], 4, "closed", None))
        hub.flush()
        batch = first.take()
        assert batch == second.take()  # the same bytes, encoded once
        assert [(e["type"], e.get("id"), e.get("running")) for e in decoded(batch)] == [
            ("task", 1, None),
            ("task", 2, None),
            ("task", 3, None),
            ("pool", None, 3),
        ]

    asyncio.run(scenario())


def test_a_client_whose_backlog_overflows_is_dropped_and_its_stream_ends() -> None:
    async def scenario() -> None:
        hub = EventHub(flush_s=3600, queue_bytes=4096)
        slow, quick = hub.subscribe(), hub.subscribe()
        stream = hub.stream(slow)
        assert await anext(stream) == b": ygg events\n\n"
        for task_id in range(200):
            hub.publish(task_event(task_id, "done"))
            if task_id % 10 == 9:
                hub.flush()
                quick.take()  # this one keeps up
        assert hub.dropped == 1 and hub.streams == 1
        assert [c for c in (slow, quick) if c.dropped] == [slow]
        assert [chunk async for chunk in stream] == []  # ended, nothing more sent

    asyncio.run(scenario())


def test_nothing_is_kept_while_nobody_listens() -> None:
    async def scenario() -> None:
        hub = EventHub(flush_s=3600)
        hub.publish(task_event(1, "done"))
        client = hub.subscribe()
        hub.flush()
        assert client.take() == b""

    asyncio.run(scenario())
