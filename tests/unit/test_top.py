"""`ygg top`: the snapshot it shows, its rendering, and its quit key."""

from __future__ import annotations

import io
import os
import sys
import termios
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from rich.console import Console

from tests.conftest import MakeConfig
from ygg.cli import top as cli_top
from ygg.cli.top import quit_keys, run_live, status_url
from ygg.ops.snapshot import (
    PoolInfo,
    RunningInfo,
    Snapshot,
    build_snapshot,
    daemon_info,
    snapshot_from_store,
)
from ygg.ops.top_view import MAX_RUNNING_ROWS, elapsed, limit_cell, render_top
from ygg.store import NewTask, open_store
from ygg.store.model import US

T0_US = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z


def snapshot(running: int = 2, pid: int | None = 77) -> Snapshot:
    return build_snapshot(
        daemon=daemon_info(pid, "async", T0_US, "/etc/ygg/ygg.toml", "/q.db"),
        pools=[
            PoolInfo("skadi-code", "skadi", "ollama", 2, ("code",)),
            PoolInfo("njord-gen", "njord", "openai", 8, ("gen",), limit=3),
            PoolInfo("fenrir-chat", "fenrir", "ollama", 3, ("chat",), "open", "connection refused"),
        ],
        load={"skadi-code": (2, 9)},
        counts={"queued": 9, "running": running, "done": 100},
        running=[
            RunningInfo(i, f"task number {i}", "code", "skadi-code", 1, T0_US - 65 * US)
            for i in range(running, 0, -1)
        ],
    )


def screen(snap: Snapshot, source: str = "live from test") -> str:
    console = Console(record=True, width=160, color_system=None, file=io.StringIO())
    console.print(render_top(snap, source=source, now_us=T0_US))
    return console.export_text()


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if "│" in line]


def test_builder_fills_every_status_and_orders_running() -> None:
    snap = snapshot(running=3)
    assert snap["tasks"] == {
        "waiting": 0, "queued": 9, "running": 3, "done": 100,
        "failed": 0, "cancelled": 0, "blocked": 0,
    }  # fmt: skip
    assert [r["id"] for r in snap["running"]] == [1, 2, 3]
    assert snap["running"][0]["started_at"] == "2023-11-14T22:12:15.000000Z"
    fenrir = snap["pools"][2]
    assert (fenrir["running"], fenrir["queued"], fenrir["breaker"]) == (0, 0, "open")
    assert snap["daemon"]["started_at"] == "2023-11-14T22:13:20.000000Z"


def test_screen_shows_pools_breakers_counts_and_running_tasks() -> None:
    text = screen(snapshot())
    assert "daemon pid 77 (async)" in text
    assert "live from test" in text
    rows = {cells[0]: cells for cells in table_rows(text) if "ollama" in cells}
    assert rows["skadi-code"][3:7] == ["2", "2", "2", "9"]  # running, slots, limit, queued
    assert rows["fenrir-chat"][-1] == "open (connection refused)"
    assert "queued 9" in text and "done 100" in text
    assert "task number 2" in text
    assert "1m05s" in text  # started 65 s before now


def test_screen_shows_each_pools_limit() -> None:
    rows = {cells[0]: cells for cells in table_rows(screen(snapshot())) if "ollama" in cells
            or "openai" in cells}  # fmt: skip
    assert rows["njord-gen"][3:7] == ["0", "8", "3", "0"]  # held at 3 of its 8 slots
    assert rows["fenrir-chat"][4:6] == ["3", "3"]  # no stored limit: its slots
    # The load bar: the slots beyond the limit are drawn apart from the free ones.
    assert rows["njord-gen"][7] == "░░" + "····"
    assert rows["skadi-code"][7] == "██████"


def test_the_limit_is_marked_when_it_holds_a_pool_under_its_slots() -> None:
    assert limit_cell(3, 8).style == "yellow"
    assert limit_cell(8, 8).style == ""


def test_a_status_without_limits_shows_the_slots() -> None:
    snap = snapshot()
    for pool in snap["pools"]:
        del pool["limit"]  # type: ignore[misc]  # an older daemon's /status
    rows = {cells[0]: cells for cells in table_rows(screen(snap)) if "skadi" in cells}
    assert rows["skadi-code"][4:6] == ["2", "2"]


def test_screen_without_a_daemon_and_with_many_running() -> None:
    text = screen(snapshot(running=MAX_RUNNING_ROWS + 5, pid=None), source="from the database")
    assert "no daemon running" in text
    assert f"running ({MAX_RUNNING_ROWS + 5})" in text
    assert "… and 5 more" in text
    assert f"task number {MAX_RUNNING_ROWS + 1}" not in text


@pytest.mark.parametrize(
    ("ago_s", "shown"), [(0, "0s"), (59, "59s"), (60, "1m00s"), (3599, "59m59s"), (7500, "2h05m")]
)
def test_elapsed(ago_s: int, shown: str) -> None:
    started = "2023-11-14T22:13:20.000000Z"
    assert elapsed(started, T0_US + ago_s * US) == shown
    assert elapsed(None, T0_US) == "-"


def test_snapshot_from_the_database_alone(make_config: MakeConfig) -> None:
    config = make_config('[pools.sim-a]\nbackend = "sim"\nslots = 2\nkinds = ["general"]\n')
    store = open_store(config.daemon.db)
    for title in ("one", "two", "three"):
        store.enqueue(NewTask(title=title, kind="general"), T0_US)
    store.claim("sim-a", ["general"], 1, slots=2, owner=1, lease_us=30 * US, now_us=T0_US)
    snap = snapshot_from_store(store, config)
    assert snap["tasks"]["queued"] == 2 and snap["tasks"]["running"] == 1
    [pool] = snap["pools"]
    assert (pool["running"], pool["queued"], pool["breaker"]) == (1, 2, "unknown")
    assert [(r["title"], r["pool"], r["attempt"]) for r in snap["running"]] == [("one", "sim-a", 1)]
    assert snap["daemon"]["pid"] is None and snap["daemon"]["mode"] == "none"


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:9464", "http://127.0.0.1:9464/status"),
        ("0.0.0.0:9464", "http://127.0.0.1:9464/status"),
        ("[::]:1", "http://[::1]:1/status"),
        ("[::1]:2", "http://[::1]:2/status"),
        ("skadi:3", "http://skadi:3/status"),
    ],
)
def test_status_url(listen: str, url: str) -> None:
    assert status_url(listen) == url


@contextmanager
def terminal_stdin(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """stdin replaced by a pseudo-terminal; yields the fd the "user" types into."""
    master, slave = os.openpty()
    tty_in = os.fdopen(slave, "r")
    monkeypatch.setattr(sys, "stdin", tty_in)
    try:
        yield master
    finally:
        tty_in.close()
        os.close(master)


def test_q_quits_and_the_terminal_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    with terminal_stdin(monkeypatch) as keyboard:
        fd = sys.stdin.fileno()
        before = termios.tcgetattr(fd)
        with quit_keys() as wait:
            assert not termios.tcgetattr(fd)[3] & termios.ICANON  # cbreak: no line buffering
            assert wait(0.01) is False
            os.write(keyboard, b"x")
            assert wait(0.01) is False
            os.write(keyboard, b"q")
            assert wait(5.0) is True
        assert termios.tcgetattr(fd) == before


def test_without_a_terminal_no_key_quits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("q\n"))
    with quit_keys() as wait:
        assert wait(0.0) is False


def test_live_view_refreshes_until_quit(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) == 3

    @contextmanager
    def quit_on_third() -> Iterator[cli_top.WaitForQuit]:
        yield wait

    monkeypatch.setattr(cli_top, "quit_keys", quit_on_third)
    fetched: list[int] = []

    def fetch() -> tuple[Snapshot, str]:
        fetched.append(1)
        return snapshot(), "test"

    run_live(fetch, 0.25)
    assert len(fetched) == 3
    assert waits == [0.25, 0.25, 0.25]
