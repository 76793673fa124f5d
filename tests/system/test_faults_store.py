"""Store faults against the real `ygg`: an external lock holder, a full disk, and database
files that are corrupt, foreign or newer than this ygg."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.faultfs import (
    SmallDisk,
    checkpointed,
    foreign_application_id,
    foreign_database,
    random_bytes_file,
    scribble_page,
    write_lock_held,
)
from ygg import api
from ygg.config import load
from ygg.store import NewTask, Store, open_store

EXIT_DATAERR = 65
MODES = pytest.mark.parametrize("mode", ["--async", "--legacy"])
SIM_POOL = '\n[pools.sim]\nbackend = "sim"\nseconds = 0.2\nslots = 2\nkinds = ["general"]\n'


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonSet]:
    with DaemonSet(tmp_path / "ygg.toml") as started:
        yield started


def submit_many(store: Store, config_path: Path, n: int, seconds: float) -> list[int]:
    config = load(str(config_path))
    return [
        api.submit(
            store,
            api.new_task(config, title=f"t{i}", kind="general", params={"seconds": str(seconds)}),
        ).id
        for i in range(n)
    ]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("ygg: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- an external lock holder ----------------------------------------------------------------


@MODES
def test_external_lock_holder_delays_but_fails_nothing(
    tmp_path: Path, daemons: DaemonSet, mode: str
) -> None:
    """The lock is held past several busy timeouts (5 s each): both modes wait it out."""
    path = write_config(tmp_path, SIM_POOL, daemon="poll_seconds = 0.2")
    store = open_store(str(tmp_path / "queue.db"))
    ids = submit_many(store, path, 12, 0.3)
    daemon = daemons.start(mode)
    assert wait_until(lambda: store.counts().get("done", 0) >= 2, 15)
    with write_lock_held(tmp_path / "queue.db", 8.0) as holder:
        late = subprocess.Popen(
            [*daemons_cmd(path), "submit", "late", "--kind", "general"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=daemons.env,
        )
        try:
            out, err = late.communicate(timeout=60)
        finally:
            if late.poll() is None:
                late.kill()
                late.wait()
        assert holder.wait(20) == 0
    assert late.returncode == 0, f"submit gave up while the lock was held: {err.strip()}"
    late_id = int(out)
    assert wait_until(lambda: store.counts() == {"done": 13}, 30), store.counts()
    assert daemon.poll() is None, "the daemon exited while the lock was held"
    assert daemons.stop(daemon) == 0
    log = daemons.log_of(daemon)
    assert "database is locked" not in log + err
    assert '"store_locked"' in log  # it did meet the lock, and waited
    assert all(store.get(i).attempts == 1 for i in [*ids, late_id])


def daemons_cmd(path: Path) -> list[str]:
    return [sys.executable, "-m", "ygg", "--config", str(path)]


# --- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    reason = SmallDisk.unavailable()
    if reason:
        pytest.skip(f"no small file system can be made here: {reason}")
    with SmallDisk(tmp_path / "disk", size="2m") as disk:
        yield disk


SUBMIT_IN_NS = """
import sys
from ygg import api
from ygg.config import load
from ygg.store import open_store
config = load(sys.argv[1])
store = open_store(config.daemon.db)
for i in range(int(sys.argv[2])):
    task = api.new_task(config, title=f"t{i}", kind="general", params={"seconds": sys.argv[3]})
    print(api.submit(store, task).id)
"""
COUNTS_IN_NS = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
rows = conn.execute("SELECT status, count(*), sum(attempts) FROM tasks GROUP BY status")
print(json.dumps({status: [n, attempts] for status, n, attempts in rows}))
"""


@MODES
def test_full_disk(tmp_path: Path, small_disk: SmallDisk, mode: str) -> None:
    db = small_disk.mountpoint / "queue.db"
    daemon_toml = "poll_seconds = 0.2\nlease_seconds = 2"
    path = write_config(tmp_path, SIM_POOL, daemon=daemon_toml, db=str(db))
    small_disk.python(SUBMIT_IN_NS, str(path), "4", "1.5")

    def counts() -> dict[str, list[int]]:
        return dict(json.loads(small_disk.python(COUNTS_IN_NS, str(db))))

    with DaemonSet(path, prefix=small_disk.prefix) as daemons:
        daemon = daemons.start(mode)
        busy = 1 if mode == "--legacy" else 2  # legacy runs one task per pool at a time
        assert wait_until(lambda: counts().get("running", [0])[0] == busy, 15), counts()
        filler = small_disk.fill()
        big = tmp_path / "prompt.txt"
        big.write_text("x" * 500_000)
        before = sum(n for n, _ in counts().values())
        refused = run_ygg(
            path,
            "submit",
            "big",
            "--kind",
            "general",
            "--prompt-file",
            str(big),
            prefix=small_disk.prefix,
        )
        message = assert_one_line_error(refused, 1)
        assert "full" in message.lower(), message
        assert sum(n for n, _ in counts().values()) == before, "a refused submit left a row"
        # The running tasks end while nothing can be written, and stay unwritten past their
        # lease (2 s): the lease keeper must keep renewing them, not take them back.
        time.sleep(4.0)
        log = daemons.log_of(daemon)
        assert daemon.poll() is None, f"the daemon exited on a full disk:\n{log[-2000:]}"
        filler.unlink()
        assert wait_until(lambda: counts() == {"done": [4, 4]}, 30), counts()
        assert daemons.stop(daemon) == 0


# --- corrupt, foreign and newer database files ----------------------------------------------


def newer_schema(path: Path) -> None:
    open_store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    checkpointed(path)


def scribbled(path: Path) -> None:
    """A ygg database with one page of its tasks overwritten by random bytes."""
    store = open_store(str(path))
    for i in range(40):
        store.enqueue(NewTask(title=f"task {i} " + "x" * 200, kind="general"), i)
    store.close()
    checkpointed(path)
    scribble_page(path, 1)


# Each maker, and whether the file must stay byte-for-byte as it was. A ygg database damaged
# inside (one page scribbled) may only be found out by a query, after a write, so for it only
# the message and the exit status are checked.
UNUSABLE: dict[str, tuple[Callable[[Path], None], bool]] = {
    "random-bytes": (random_bytes_file, True),
    "foreign-tables": (foreign_database, True),
    "foreign-application-id": (foreign_application_id, True),
    "newer-schema": (newer_schema, True),
    "scribbled-page": (scribbled, False),
}
COMMANDS = {
    "list": ("list",),
    "migrate": ("migrate",),
    "loop": ("loop", "--until-idle"),
    "submit": ("submit", "t", "--kind", "general"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(UNUSABLE))
def test_unusable_database_is_refused_untouched(tmp_path: Path, kind: str, command: str) -> None:
    path = write_config(tmp_path, SIM_POOL)
    db = tmp_path / "queue.db"
    make, untouched = UNUSABLE[kind]
    make(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    result = run_ygg(path, *COMMANDS[command], timeout_s=30)
    if untouched:
        assert hashlib.sha256(db.read_bytes()).hexdigest() == digest, "the file was changed"
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    if command == "loop":  # a daemon that got as far as logging: its last word is the sentence
        lines = [line for line in lines if not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("ygg: "), result.stderr[-3000:]
    assert "Traceback" not in lines[0]
    assert result.returncode == EXIT_DATAERR, f"exit {result.returncode}: {lines[0]}"
