"""The nudge protocol's parts, alone: the strict parser, the token bucket, the log limiter,
the credentials the kernel attaches, and the guard that puts them together."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ygg import nudge
from ygg.dispatch.nudge_listen import (
    BURST,
    Credentials,
    Guard,
    LogLimiter,
    SenderPolicy,
    TokenBucket,
    credentials,
)
from ygg.nudge import BadNudge, Nudge, parse


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def ucred(pid: int, uid: int, gid: int) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iII", pid, uid, gid))]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"wake", Nudge(nudge.WAKE)),
        (b"reload", Nudge(nudge.RELOAD)),
        (b"peers", Nudge(nudge.PEERS)),
        (b"cancel 1", Nudge(nudge.CANCEL, 1)),
        (b"cancel 9223372036854775807", Nudge(nudge.CANCEL, 2**63 - 1)),
        (nudge.cancel_message(42), Nudge(nudge.CANCEL, 42)),
    ],
)
def test_parses_every_nudge_the_senders_send(data: bytes, expected: Nudge) -> None:
    assert parse(data) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"x" * (nudge.MAX_NUDGE_BYTES + 1), "oversized"),
        (b"cancel " + b"1" * 60, "oversized"),
        (b"cancel x", "bad task id"),
        (b"cancel", "bad task id"),
        (b"cancel ", "bad task id"),
        (b"cancel 0", "bad task id"),
        (b"cancel -1", "bad task id"),
        (b"cancel +1", "bad task id"),
        (b"cancel 1 2", "bad task id"),
        (b"cancel  1", "bad task id"),
        (b"cancel 1\n", "bad task id"),
        (b"cancel 1_000", "bad task id"),
        (b"cancel \xd9\xa1", "bad task id"),  # ARABIC-INDIC DIGIT ONE: int() would take it
        (b"cancel 9223372036854775808", "bad task id"),  # past SQLite's largest rowid
        (b"wake up", "unknown verb"),
        (b"wake ", "unknown verb"),
        (b"WAKE", "unknown verb"),
        (b"stop", "unknown verb"),
        (b"\x00\xff\xfe binary", "unknown verb"),
    ],
)
def test_refuses_anything_else_saying_why(data: bytes, reason: str) -> None:
    with pytest.raises(BadNudge) as caught:
        parse(data)
    assert caught.value.message == reason


def test_token_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=200.0, burst=100, clock=clock)
    assert sum(bucket.take() for _ in range(150)) == 100  # the burst, then nothing
    clock.now_s += 0.25  # 50 tokens' worth (a time exact in binary)
    assert sum(bucket.take() for _ in range(80)) == 50
    clock.now_s += 3600.0  # a long quiet spell saves up no more than the burst
    assert sum(bucket.take() for _ in range(1000)) == 100


def test_token_bucket_survives_a_clock_that_steps_back() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=10.0, burst=1, clock=clock)
    assert bucket.take()
    clock.now_s -= 5.0
    assert not bucket.take()
    clock.now_s += 0.125
    assert bucket.take()


def test_log_limiter_logs_once_per_period_and_counts_what_it_left_out() -> None:
    clock = Clock()
    limiter = LogLimiter(every_s=10.0, clock=clock)
    with capture_logs() as events:
        assert limiter.emit("nudge_refused", uid=65534)
        for _ in range(500):
            assert not limiter.emit("nudge_refused", uid=65534)
        assert limiter.emit("nudge_ignored", reason="empty")  # another name has its own period
        clock.now_s += 10.0
        assert limiter.emit("nudge_refused", uid=65534)
    assert [(e["event"], e["suppressed"]) for e in events] == [
        ("nudge_refused", 0),
        ("nudge_ignored", 0),
        ("nudge_refused", 500),
    ]
    assert events[0]["log_level"] == "warning" and events[0]["uid"] == 65534


def test_credentials_come_from_the_scm_credentials_message_only() -> None:
    assert credentials(ucred(12, 34, 56)) == Credentials(12, 34, 56)
    assert credentials([]) is None
    assert credentials([(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", 3))]) is None
    assert credentials([(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, b"\x01\x02")]) is None


def test_policy_allows_our_user_and_root_even_without_the_queue_file(tmp_path: Path) -> None:
    policy = SenderPolicy(os.path.join(tmp_path, "missing.db"))
    assert policy.allows(Credentials(1, os.getuid(), 12345))
    assert policy.allows(Credentials(1, 0, 12345))
    assert not policy.allows(Credentials(1, 54321, 54321))  # no file: no group to be in


def test_policy_allows_a_user_whose_gid_is_the_queue_files_group(tmp_path: Path) -> None:
    queue = os.path.join(tmp_path, "queue.db")
    open(queue, "w").close()
    group = os.stat(queue).st_gid
    other_uid = 54321 if os.getuid() != 54321 else 54322  # no such user, no such process
    policy = SenderPolicy(queue)
    assert policy.allows(Credentials(2**31 - 1, other_uid, group))
    assert not policy.allows(Credentials(2**31 - 1, other_uid, group + 1))


def test_guard_drops_past_the_burst_refuses_strangers_and_ignores_garbage() -> None:
    clock = Clock()
    guard = Guard("/nonexistent/queue.db", clock=clock)
    me = ucred(os.getpid(), os.getuid(), os.getgid())
    stranger = ucred(1, 54321, 54321) if os.getuid() != 54321 else ucred(1, 54322, 54322)
    with capture_logs() as events:
        assert guard.admit(b"cancel 7", me) == Nudge(nudge.CANCEL, 7)
        assert guard.admit(b"cancel 7", stranger) is None
        assert guard.admit(b"cancel 7", []) is None  # no credentials: refused too
        assert guard.admit(b"cancel x", me) is None
        admitted = [guard.admit(b"wake", me) for _ in range(BURST * 3)]
    assert admitted.count(Nudge(nudge.WAKE)) == BURST - 4  # four spent above
    names = [e["event"] for e in events]
    assert names == ["nudge_refused", "nudge_ignored", "nudges_dropped"]  # once each
    assert events[0]["uid"] in (54321, 54322)
    assert events[1]["reason"] == "bad task id"


def test_guard_handle_keeps_going_when_acting_on_a_nudge_fails() -> None:
    guard = Guard("/nonexistent/queue.db")
    me = ucred(os.getpid(), os.getuid(), os.getgid())
    seen: list[Nudge] = []

    def act(message: Nudge) -> None:
        seen.append(message)
        raise RuntimeError("a bug in the dispatcher")

    with capture_logs() as events:
        guard.handle(b"wake", me, act)
        guard.handle(b"reload", me, act)
    assert seen == [Nudge(nudge.WAKE), Nudge(nudge.RELOAD)]
    assert [e["event"] for e in events] == ["nudge_failed"]  # the second was rate-limited
    assert events[0]["log_level"] == "error"
