"""One PostgreSQL connection (psycopg 3, sync): opening it, transactions, errors, the clock.

Every domain operation is one transaction (`write()`); inside another (a `batch()`) it is a
savepoint, which psycopg 3 makes of a nested `conn.transaction()`: a failed operation undoes
only its own changes. The connection is in autocommit mode outside those blocks, so nothing
holds a snapshot or sits "idle in transaction" between operations.

A lost connection (a server restart, a terminated backend, the network) raises
StoreConnectionLost, a StoreUnavailable; the next operation connects again. A deadlock or a
serialization failure rolls the operation back whole, and a top-level operation is simply run
again (`atomic`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Concatenate, Literal, ParamSpec, Self, TypeVar

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from ygg.errors import (
    BatchUndone,
    StoreBusy,
    StoreConflict,
    StoreConnectionLost,
    StoreError,
    StoreFull,
    StoreRefused,
)
from ygg.store.postgres.schema import MIGRATIONS, migrate, stored_version

Clock = Literal["caller", "database"]
CONNECT_TIMEOUT_S = 10
CONFLICT_ATTEMPTS = 5  # a deadlock between two claims or outcomes is rare; it does not repeat
PASSWORD_CREDENTIAL = "ygg-db-password"  # the systemd credential (LoadCredential=) name
TABLES = (  # every table of ours: `check` reads each whole
    "meta",
    "tasks",
    "deps",
    "slots",
    "daemons",
    "breakers",
    "host_telemetry",
    "pool_limits",
    "daemon_slots",
)
DB_NOW_US = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
# Every write transaction on the database's clock begins with this (one round trip). Its
# prepared statements run on generic plans: left to choose, the server planned the claim
# afresh on every run (about 0.45 ms, a third of running it for 64 tasks), as each custom plan,
# knowing how many tasks are wanted, looks cheaper than the generic one. The generic plans
# walk the same indexes (tests/integration/test_postgres_claims.py). Local to the transaction.
_BEGIN = f"BEGIN; {DB_NOW_US}, set_config('plan_cache_mode', 'force_generic_plan', true)"
_LOST = (
    pg_errors.AdminShutdown,
    pg_errors.CrashShutdown,
    pg_errors.CannotConnectNow,
    pg_errors.ConnectionException,
    psycopg.InterfaceError,
)
_DAMAGE = (pg_errors.DataCorrupted, pg_errors.IndexCorrupted)

log = structlog.get_logger("ygg.store")
D = TypeVar("D", bound="Database")
P = ParamSpec("P")
T = TypeVar("T")


def first_line(exc: BaseException) -> str:
    """An error's first line, as the end of one sentence of ours."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (
        (lines[0] if lines else type(exc).__name__).removeprefix("connection failed: ").rstrip(".")
    )


def describe(url: str) -> str:
    """The database a URL names, without its password: `postgresql://user@host:port/db`."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise StoreError(f"Not a valid PostgreSQL URL: {first_line(exc)}.") from None
    user = f"{params['user']}@" if params.get("user") else ""
    host = str(params.get("host") or "localhost")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


def connect_options(url: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """What psycopg.connect gets besides the URL. The URL's own settings and libpq's PG*
    variables win; the password comes from PGPASSWORD, ~/.pgpass or the systemd credential,
    never from ygg's configuration file."""
    params = conninfo_to_dict(url)
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in environ:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in params and "PGAPPNAME" not in environ:
        options["application_name"] = "ygg"
    if "password" not in params and "PGPASSWORD" not in environ:
        from ygg.config.credentials import read_secret

        password = read_secret(PASSWORD_CREDENTIAL, environ)
        if password:
            options["password"] = password
    return options


def atomic(method: Callable[Concatenate[D, P], T]) -> Callable[Concatenate[D, P], T]:
    """Runs a top-level operation again when it lost a deadlock or a serialization conflict
    (it was rolled back whole). Inside a batch the conflict goes up: the batch is retried."""

    @functools.wraps(method)
    def run(self: D, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self.depth:
            return method(self, *args, **kwargs)
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return method(self, *args, **kwargs)
            except StoreConflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    return run


class Database:
    """Owns one connection; use it from one thread at a time."""

    def __init__(self, url: str, *, clock: Clock = "caller") -> None:
        if clock not in ("caller", "database"):
            raise ValueError(f"clock must be 'caller' or 'database', not {clock!r}")
        self.url = url
        self.where = describe(url)
        self.clock = clock
        self.depth = 0
        # In a batch(savepoints=False): nested writes share the transaction without a savepoint
        # each (two round trips saved per operation), and one that fails undoes the batch.
        self._savepoints = True
        self._undone = False
        self._db_now: int | None = None  # the database's clock, read once per transaction
        self._notify: set[str] = set()  # sent once the outermost transaction has committed
        self._conn: psycopg.Connection[Any] | None = None
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            # Transient by kind: a command says so in one sentence and exits 1, a daemon
            # waits for the server with backoff (store/writer.py).
            raise StoreConnectionLost(
                f"Cannot reach the PostgreSQL database {self.where}: {first_line(exc)}."
            ) from None
        try:
            migrate(self._conn, self.where)
        except psycopg.Error as exc:
            self.close()
            raise self._translate(exc, "creating the schema") from None
        except BaseException:
            self.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, **connect_options(self.url, os.environ))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The live connection, connecting again if the last one was lost (never inside a
        transaction: what it did is gone with it)."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self.depth:
            raise StoreConnectionLost(f"{self.where}: the connection to the database was lost.")
        self.close()
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise StoreConnectionLost(
                f"Cannot reach the PostgreSQL database {self.where}: {first_line(exc)}."
            ) from None
        return self._conn

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction; nested, a savepoint that undoes only its own changes if it raises
        (in a batch without savepoints, a part of the batch's transaction: see batch())."""
        conn = self.conn
        if self.depth and not self._savepoints:
            with self._shared(conn):
                yield conn
            return
        self.depth += 1
        committed = False
        try:
            outermost = self.depth == 1 and self.clock == "database"
            with self._begun(conn) if outermost else conn.transaction():
                yield conn
            committed = self.depth == 1
        except psycopg.Error as exc:
            raise self._translate(exc, "the operation") from None
        finally:
            self.depth -= 1
            if not self.depth:
                self._db_now = None
                pending, self._notify = self._notify, set()
                if committed and pending:
                    self._send_notifications(conn, pending)

    @contextmanager
    def _begun(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """The outermost transaction on the database's clock: BEGIN and the clock's reading in
        one round trip, not two (the daemon's batches are bound by round trips, not by the
        server's work). Nested writes inside are savepoints as ever (psycopg makes one of
        a transaction() entered while a transaction is open)."""
        cursor = conn.execute(_BEGIN)
        cursor.nextset()
        row = cursor.fetchone()
        assert row is not None
        self._db_now = int(row[0])
        try:
            yield
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                self.close()  # the next operation starts afresh, with nothing half-done
            raise
        conn.execute("COMMIT")

    def notify(self, message: str) -> None:
        """Tells the daemons listening on this database (listen.py) `message` — a nudge's text
        — once this operation's transaction has committed, in a transaction of its own:
        NOTIFY inside the operation would hold a cluster-wide lock through its commit."""
        self._notify.add(message)

    def _send_notifications(self, conn: psycopg.Connection[Any], messages: set[str]) -> None:
        try:
            conn.execute(
                "SELECT pg_notify('ygg', m) FROM unnest(%s::text[]) AS m", (sorted(messages),)
            )
        except psycopg.Error as exc:
            # The operation itself committed: failing it now would tell its caller a lie. The
            # daemons' safety poll finds the work without the hint.
            log.warning("store_notify_failed", db=self.where, error=first_line(exc))

    @contextmanager
    def read(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection for reading: outside a transaction each statement is atomic on its
        own (as the SQLite engine's reads), so a read never holds a snapshot or a lock."""
        try:
            yield self.conn
        except psycopg.Error as exc:
            raise self._translate(exc, "reading the queue") from None

    @contextmanager
    def _shared(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """A nested write with no savepoint: if it raises, the transaction may hold half of
        it (or be aborted), so the batch is marked to be undone whole."""
        self.depth += 1
        try:
            yield
        except psycopg.Error as exc:
            self._undone = True
            raise self._translate(exc, "the operation") from None
        except BaseException:
            self._undone = True
            raise
        finally:
            self.depth -= 1

    @contextmanager
    def batch(self, *, savepoints: bool = True) -> Iterator[None]:
        """The store interface's batch: one transaction; nested, a savepoint. Outermost with
        `savepoints=False`, the operations inside get no savepoint of their own (each costs
        two round trips to the server); if any of them raised, even one its caller caught,
        everything is rolled back and BatchUndone raised, to run the batch again with them."""
        if savepoints or self.depth:
            with self.write():
                yield
            return
        self._savepoints, self._undone = False, False
        try:
            with self.write():
                yield
                if self._undone:
                    raise BatchUndone(f"{self.where}: an operation of the batch failed.")
        finally:
            self._savepoints = True

    def now(self, conn: psycopg.Connection[Any], now_us: int) -> int:
        """The time an operation happens at: the caller's `now_us`, or (clock="database") the
        database server's clock, one clock for every machine sharing the queue. Read once per
        transaction: the operations of a batch share it, as they share their commit."""
        if self.clock == "caller":
            return now_us
        if self._db_now is None:
            row = conn.execute(DB_NOW_US).fetchone()
            assert row is not None
            self._db_now = int(row[0])
        return self._db_now

    def check(self) -> None:
        """Reads every table whole; damaged data is refused (StoreRefused)."""
        with self.write() as conn:
            for table in TABLES:
                conn.execute(f"SELECT count(*), max(length(t::text)) FROM ygg.{table} AS t")

    def schema_version(self) -> int:
        with self.read() as conn:
            version = stored_version(conn, self.where)
        return len(MIGRATIONS) if version is None else version

    def _translate(self, exc: psycopg.Error, doing: str) -> StoreError:
        """A psycopg error as the store's error kinds: transient trouble is StoreUnavailable."""
        reason = first_line(exc)
        conn = self._conn
        if isinstance(exc, pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
            return StoreConflict(f"{self.where}: {doing} collided with another ({reason}).")
        if conn is None or conn.closed or conn.broken or isinstance(exc, _LOST):
            return StoreConnectionLost(
                f"{self.where}: the connection to the database was lost ({reason})."
            )
        if isinstance(exc, pg_errors.DiskFull | pg_errors.OutOfMemory):
            return StoreFull(f"{self.where}: the database server is out of space ({reason}).")
        if isinstance(exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable):
            return StoreBusy(f"{self.where}: {doing} timed out ({reason}).")
        if isinstance(exc, _DAMAGE):
            return StoreRefused(f"{self.where}: the database is damaged ({reason}).")
        return StoreError(f"{self.where}: {doing} failed: {reason}.")
