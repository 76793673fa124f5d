"""One SQLite connection: opening it safely, write transactions, migrations.

A file that is not ours (another application's database, a newer schema, not a database at
all) is refused before anything is written to it, so it stays byte-for-byte as it was.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable, Sequence

from ygg.errors import QueueNotFound, StoreBusy, StoreError, StoreFull, StoreRefused
from ygg.paths import parent
from ygg.store.sqlite.schema import APPLICATION_ID, MIGRATIONS, statements

SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _wrap(path: str, exc: sqlite3.Error, doing: str) -> StoreError:
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return StoreFull(f"{path}: the disk is full; {doing} was not saved.")
    if is_damage(exc):
        return damaged(path, exc)
    return StoreError(f"{path}: {doing} failed: {exc}.")


def is_damage(exc: BaseException) -> bool:
    """A damaged file (not a bug, a lock or a full disk): SQLite's DatabaseError proper."""
    return type(exc) is sqlite3.DatabaseError


def damaged(path: str, exc: BaseException | str) -> StoreRefused:
    return StoreRefused(
        f"{path}: the database file is damaged ({exc}); move it aside and restore a backup."
    )


TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from typing import Any, Concatenate, ParamSpec, Self, TypeVar

    D = TypeVar("D", bound="Database")
    P = ParamSpec("P")
    T = TypeVar("T")


def reads(method: Callable[Concatenate[D, P], T]) -> Callable[Concatenate[D, P], T]:
    """Marks a read outside a write transaction: a damaged page becomes StoreRefused too."""

    @functools.wraps(method)
    def checked(self: D, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise damaged(self.path, exc) from None
            raise

    return checked


class Database:
    """Owns one connection; use it from one thread at a time."""

    def __init__(
        self, path: str, *, synchronous: str = "full", busy_timeout_s: float = 30.0
    ) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._depth = 0
        try:
            self.conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        except sqlite3.Error as exc:
            raise _cannot_open(path, exc) from None
        try:
            self._check_ours()
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[synchronous]}")
            self.conn.execute("PRAGMA temp_store = MEMORY")
            self.conn.execute("PRAGMA cache_size = -32000")  # 32 MB, bounded whatever the depth
            self.migrate()
        except sqlite3.OperationalError as exc:
            self.conn.close()
            if "unable to open" in str(exc) or "readonly" in str(exc):
                raise _cannot_open(path, exc) from None
            raise _wrap(path, exc, "opening the database") from None
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreRefused(f"{path}: {exc}; it is not a usable ygg database.") from None
        except StoreError:
            self.conn.close()
            raise

    def _check_ours(self) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (tables and app_id != APPLICATION_ID):
            raise StoreRefused(f"{self.path}: this SQLite database belongs to another application.")
        if version > len(MIGRATIONS):
            raise StoreRefused(
                f"{self.path}: the database has schema version {version}, newer than this ygg "
                f"understands ({len(MIGRATIONS)}); upgrade ygg."
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self) -> Write:
        """A write transaction (BEGIN IMMEDIATE). A nested call is a savepoint inside the outer
        transaction: if it raises, only its own changes are undone (a batch of operations in one
        transaction must not keep half of a failed one)."""
        return Write(self)

    def batch(self, *, savepoints: bool = True) -> Batch:
        """The store interface's batch: one transaction; nested, a savepoint. (`savepoints`
        is ignored: a SQLite savepoint costs no round trip, so every operation keeps one.)"""
        del savepoints
        return Batch(Write(self))

    @reads
    def check(self) -> None:
        """Reads every page (PRAGMA quick_check); a damaged file is refused (StoreRefused)."""
        problems = [row[0] for row in self.conn.execute("PRAGMA quick_check(2)")]
        if problems != ["ok"]:
            found = " ".join(" ".join(problem.split()) for problem in problems)
            raise damaged(self.path, found.removeprefix("*** in database main *** "))

    def schema_version(self) -> int:
        version: int = self.conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    def _begin(self) -> None:
        # sqlite's busy handler already waits up to busy_timeout_s; this loop only covers the
        # cases where SQLite reports BUSY at once instead of waiting.
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc):
                    raise _wrap(self.path, exc, "starting a write") from None
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"{self.path}: the database stayed locked by another process for "
                        f"{self.busy_timeout_s:g} s."
                    ) from None
                time.sleep(0.005)

    def migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.write() as conn:
                # Another process may have migrated while we waited for the lock.
                if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                    continue
                for statement in statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {number}")


class Write:
    """`Database.write()`. A class, not @contextmanager: `import contextlib` is 2% of every
    `ygg list`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.savepoint: str | None = None

    def __enter__(self) -> sqlite3.Connection:
        db = self.db
        if db._depth:
            self.savepoint = f"nested{db._depth}"
            db.conn.execute(f"SAVEPOINT {self.savepoint}")
            db._depth += 1
        else:
            db._begin()
            db._depth = 1
        return db.conn

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if self.savepoint is not None:
            self._end_savepoint(self.savepoint, failed=exc is not None)
            return
        db = self.db
        try:
            if exc is None:
                try:
                    db.conn.execute("COMMIT")
                except BaseException as failure:
                    self._undo(failure)
                    raise
            else:
                self._undo(exc)
        finally:
            db._depth = 0

    def _undo(self, exc: BaseException) -> None:
        db = self.db
        if db.conn.in_transaction:  # SQLite may have rolled back already (disk full)
            db.conn.execute("ROLLBACK")
        # A lock, a full disk or a damaged file: not a bug of ours, so it is said plainly.
        if isinstance(exc, sqlite3.OperationalError) or (
            isinstance(exc, sqlite3.DatabaseError) and is_damage(exc)
        ):
            raise _wrap(db.path, exc, "the write") from None

    def _end_savepoint(self, name: str, *, failed: bool) -> None:
        db = self.db
        try:
            if not failed:
                db.conn.execute(f"RELEASE {name}")
            elif db.conn.in_transaction:
                db.conn.execute(f"ROLLBACK TO {name}")
                db.conn.execute(f"RELEASE {name}")
        finally:
            db._depth -= 1


class Batch:
    """`Database.batch()`: a Write that hands out nothing."""

    def __init__(self, write: Write) -> None:
        self.write = write

    def __enter__(self) -> None:
        self.write.__enter__()

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self.write.__exit__(kind, exc, tb)


def marks(values: Sequence[Any]) -> str:
    """The `?, ?, ?` for an IN list of `values`."""
    return ",".join("?" * len(values))


def db_path(url: str) -> str:
    """The SQLite file a `daemon.db` value names; other engines are refused clearly. Its
    directory must exist: a typo in a path must not quietly start an empty queue elsewhere."""
    if "://" in url and not url.startswith("sqlite:///"):
        raise StoreError(f"{url.partition('://')[0]}://...: not a SQLite file.")
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") - 1 :]
    directory = parent(url)
    if not os.path.isdir(directory):
        raise QueueNotFound(
            f"{url}: the directory {directory} does not exist; create it first (ygg creates "
            "the queue file, not the directories above it)."
        )
    return url


def _cannot_open(path: str, exc: sqlite3.Error) -> StoreError:
    directory = parent(path)
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return StoreError(
            f"{path}: the file system is read-only; ygg must be able to write the queue and "
            "its -wal and -shm files beside it."
        )
    return StoreError(f"{path}: cannot open the database: {exc}.")
