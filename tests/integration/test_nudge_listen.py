"""Both nudge listeners on real sockets, with real senders: this user, and `nobody`.

What a listener hands on is what the dispatchers act on, so: nothing from a user who may not
write the queue, nothing that is not a nudge, and the listener still takes nudges after any
amount of garbage.
"""

from __future__ import annotations

import asyncio
import os
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.support.daemons import wait_until
from tests.support.nudges import GARBAGE, nobody, send
from ygg import nudge
from ygg.dispatch.nudge_listen import BlockingListener, Listener
from ygg.nudge import Nudge

WAIT_S = 10.0


@pytest.fixture
def queue_file(tmp_path: Path) -> Path:
    path = tmp_path / "queue.db"
    path.write_bytes(b"")  # the policy only looks at the file's group
    return path


@pytest.fixture
def blocking(queue_file: Path) -> Iterator[tuple[BlockingListener, queue.Queue[Nudge]]]:
    received: queue.Queue[Nudge] = queue.Queue()
    listener = BlockingListener(received.put, str(queue_file))
    try:
        yield listener, received
    finally:
        listener.close()
    assert not listener.is_alive(), "close() did not end the listener's thread"


def received_soon(received: queue.Queue[Nudge]) -> Nudge:
    return received.get(timeout=WAIT_S)


def drained(received: queue.Queue[Nudge]) -> list[Nudge]:
    out = []
    while not received.empty():
        out.append(received.get_nowait())
    return out


def test_refuses_nobody_and_hears_us(
    blocking: tuple[BlockingListener, queue.Queue[Nudge]],
) -> None:
    listener, received = blocking
    with capture_logs() as events:
        assert send(listener.address, [b"cancel 5", b"wake", b"reload"], as_nobody=True) == 3
        send(listener.address, [b"cancel 6"])
        # In order: once ours arrived, nobody's were read (and refused) before it.
        assert received_soon(received) == Nudge(nudge.CANCEL, 6)
    assert drained(received) == []
    refused = [e for e in events if e["event"] == "nudge_refused"]
    assert len(refused) == 1, events  # three refused, one event: the rest rate-limited
    assert (refused[0]["uid"], refused[0]["gid"]) == (nobody().pw_uid, nobody().pw_gid)


def test_hears_a_user_in_the_queue_files_group(
    blocking: tuple[BlockingListener, queue.Queue[Nudge]], queue_file: Path
) -> None:
    listener, received = blocking
    os.chown(queue_file, -1, nobody().pw_gid)  # nobody's group may now write the queue
    send(listener.address, [b"cancel 5"], as_nobody=True)
    assert received_soon(received) == Nudge(nudge.CANCEL, 5)


def test_blocking_listener_survives_garbage_and_a_flood(
    blocking: tuple[BlockingListener, queue.Queue[Nudge]],
) -> None:
    listener, received = blocking
    assert send(listener.address, GARBAGE) == len(GARBAGE)
    # Sends block while the socket is full: all of these went through the listener.
    assert send(listener.address, [*GARBAGE, b"wake"], rounds=500) == 500 * (len(GARBAGE) + 1)
    assert send(listener.address, GARBAGE, rounds=500, as_nobody=True) == 500 * len(GARBAGE)
    assert listener.is_alive()
    taken = drained(received)
    assert taken and set(taken) == {Nudge(nudge.WAKE)}  # only nudges, and not every one
    assert len(taken) < 500, "the token bucket let a flood through"
    # Still listening once the bucket refills (a token every 5 ms).
    assert wait_until(lambda: resend_until_heard(listener.address, received), WAIT_S)


def resend_until_heard(address: str, received: queue.Queue[Nudge]) -> bool:
    nudge.send([address], b"cancel 8")
    try:
        return received.get(timeout=0.1) == Nudge(nudge.CANCEL, 8)
    except queue.Empty:
        return False


def test_async_listener_refuses_nobody_and_survives_garbage(queue_file: Path) -> None:
    async def scenario() -> list[Nudge]:
        taken: list[Nudge] = []
        listener = Listener(nudge.new_address(), taken.append, str(queue_file))
        listener.start()
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                None, lambda: send(listener.address, [b"cancel 5"], as_nobody=True)
            )
            await loop.run_in_executor(
                None, lambda: send(listener.address, [*GARBAGE, b"wake"], rounds=300)
            )
            flood = list(taken)
            taken.clear()
            # The loop went on running (this coroutine did), and the listener still hears us.
            deadline = loop.time() + WAIT_S
            while Nudge(nudge.CANCEL, 9) not in taken and loop.time() < deadline:
                nudge.send([listener.address], b"cancel 9")
                await asyncio.sleep(0.05)
            return [*flood, *taken]
        finally:
            listener.close()

    with capture_logs() as events:
        taken = asyncio.run(scenario())
    assert Nudge(nudge.CANCEL, 5) not in taken
    assert Nudge(nudge.CANCEL, 9) in taken
    assert set(taken) <= {Nudge(nudge.WAKE), Nudge(nudge.CANCEL, 9)}
    names = {e["event"] for e in events}
    assert {"nudge_refused", "nudge_ignored", "nudges_dropped"} <= names
    assert "nudge_failed" not in names
