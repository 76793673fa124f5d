"""Store faults made real: a process holding the SQLite write lock, a small full file system,
and files that are not a usable ygg database.

A full disk lives in a private mount namespace (`unshare -m`) holding a tmpfs, so nothing
outside this test sees the mount; `ygg` runs inside it through `nsenter`. Plain files there are
reached through /proc/<holder>/root, but SQLite resolves that link to "/" and would open the
file under the mount instead, so the database is only ever opened from inside (`python`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.daemons import ygg_env

LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@contextlib.contextmanager
def write_lock_held(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds BEGIN IMMEDIATE on `db` for `seconds` (yields once it does)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(db), str(seconds)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError(f"the lock holder did not take the lock: {line!r}")
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


class SmallDisk:
    """A tmpfs of `size` mounted on `mountpoint` in a private mount namespace."""

    def __init__(self, mountpoint: Path, size: str = "3m") -> None:
        self.mountpoint = mountpoint
        self.size = size
        self.holder: subprocess.Popen[str] | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Why no SmallDisk can be made here, or None if one can."""
        for tool in ("unshare", "nsenter", "mount"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        probe = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            return f"cannot mount a tmpfs in a private mount namespace: {probe.stderr.strip()}"
        return None

    def __enter__(self) -> SmallDisk:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        script = (
            f'mount -t tmpfs -o size={self.size} tmpfs "{self.mountpoint}" && '
            "echo ready && exec sleep 3600"
        )
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "ready":
            self.__exit__()
            raise RuntimeError("the tmpfs could not be mounted")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.holder is not None:
            self.holder.kill()  # the namespace, and the tmpfs with it, go away
            self.holder.wait(10)
            if self.holder.stdout is not None:
                self.holder.stdout.close()

    @property
    def prefix(self) -> list[str]:
        """Runs a command inside the namespace (nsenter execs it: its pid is the command's)."""
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def python(self, code: str, *args: str) -> str:
        """Runs Python code inside the namespace (with ygg importable); returns its stdout."""
        done = subprocess.run(
            [*self.prefix, sys.executable, "-c", code, *args],
            env=ygg_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"python in the namespace failed: {done.stderr.strip()}")
        return done.stdout

    def outside(self, path: Path) -> Path:
        """The path, inside the namespace, as this process can reach it (not for SQLite)."""
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/root{path}")

    def remount_read_only(self) -> None:
        subprocess.run(
            [*self.prefix, "mount", "-o", "remount,ro", str(self.mountpoint)],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def fill(self, name: str = "filler") -> Path:
        """Writes a file until the disk is full; returns its (outside) path."""
        filler = self.outside(self.mountpoint / name)
        chunk = b"\0" * 4096
        with filler.open("wb", buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        return filler


def random_bytes_file(path: Path, size: int = 16384, seed: int = 65) -> None:
    path.write_bytes(random.Random(seed).randbytes(size))


def foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('not a queue')")
    conn.commit()
    conn.close()


def foreign_application_id(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


def scribble_page(path: Path, page: int, page_size: int = 4096, seed: int = 66) -> None:
    """Overwrites one page of a database file with random bytes."""
    with path.open("r+b") as f:
        f.seek(page * page_size)
        f.write(random.Random(seed).randbytes(page_size))


def checkpointed(path: Path) -> None:
    """Folds the WAL into the main file (still in WAL mode), so the file alone holds it all."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
