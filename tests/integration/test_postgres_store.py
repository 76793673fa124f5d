"""The PostgreSQL engine itself: its clock, its schema, and what it does when the server goes
away. (What every engine must do is in tests/contract, which runs on PostgreSQL too.)"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import psycopg
import pytest

from tests.conftest import REPO, subprocess_env
from tests.support.pg import PgCluster, free_port
from ygg.errors import (
    EXIT_DATA,
    EXIT_RUNTIME,
    StoreConnectionLost,
    StoreError,
    StoreRefused,
    StoreUnavailable,
)
from ygg.store import NewTask, Outcome, open_store
from ygg.store.base import Store
from ygg.store.model import US, now_us
from ygg.store.postgres.schema import MIGRATIONS

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

LEASE_US = 30 * US
HOUR_US = 3600 * US


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def snapshot(url: str) -> list[Any]:
    """Every table ygg or anyone else has in the database, with its columns and rows."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        found: list[Any] = []
        for schema, table in tables:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table),
            ).fetchall()
            query = psycopg.sql.SQL("SELECT * FROM {}.{} ORDER BY 1").format(
                psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
            )
            found.append((schema, table, columns, conn.execute(query).fetchall()))
        return found


def ygg_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ygg", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=subprocess_env(),
    )


# --- the database's clock ------------------------------------------------------------------------
def test_a_caller_whose_clock_runs_an_hour_ahead_cannot_expire_a_live_lease(pg_url: str) -> None:
    owner = open_store(pg_url)  # the daemon's default: the database's clock
    ahead = open_store(pg_url)
    try:
        task = owner.enqueue(NewTask(title="t", kind="k"), now_us())
        (held,) = owner.claim("p", ["k"], 1, slots=1, owner=1, lease_us=LEASE_US, now_us=now_us())
        assert ahead.reap(now_us() + HOUR_US, alive_owners=set()) == []
        assert ahead.get(task).status == "running"
        # A renewal by a caller an hour behind does not stretch the lease by an hour either.
        owner.renew(1, [task], now_us() - HOUR_US + LEASE_US, now_us() - HOUR_US)
        assert ahead.reap(now_us() + HOUR_US, alive_owners=set()) == []
        assert owner.complete(task, held.token, Outcome("ok"), now_us()) == []
    finally:
        owner.close()
        ahead.close()


def test_on_the_callers_clock_the_same_skew_would_take_the_task(pg_url: str) -> None:
    """The contrast: what the test above guards against really happens without it."""
    owner = open_store(pg_url, clock="caller")
    ahead = open_store(pg_url, clock="caller")
    try:
        task = owner.enqueue(NewTask(title="t", kind="k"), now_us())
        owner.claim("p", ["k"], 1, slots=1, owner=1, lease_us=LEASE_US, now_us=now_us())
        assert ahead.reap(now_us() + HOUR_US, alive_owners=set()) == [(task, "queued", 1)]
    finally:
        owner.close()
        ahead.close()


def test_a_lease_expires_on_the_database_clock_whatever_the_callers_say(pg_url: str) -> None:
    behind = open_store(pg_url)
    try:
        task = behind.enqueue(NewTask(title="t", kind="k"), now_us())
        behind.claim("p", ["k"], 1, slots=1, owner=1, lease_us=US // 5, now_us=now_us() - HOUR_US)
        deadline = time.monotonic() + 10
        reaped: list[Any] = []
        while not reaped and time.monotonic() < deadline:
            time.sleep(0.05)
            reaped = behind.reap(now_us() - HOUR_US, alive_owners=set())
        assert reaped == [(task, "queued", 1)]
        stored = behind.get(task)
        assert abs(stored.created_us - now_us()) < 60 * US  # recorded on the server's clock
    finally:
        behind.close()


# --- the schema ----------------------------------------------------------------------------------
def test_a_fresh_database_gets_the_schema_ygg_and_nothing_else(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        store.check()
    finally:
        store.close()
    tables = {(schema, table) for schema, table, _, _ in snapshot(pg_url)}
    assert {schema for schema, _ in tables} == {"ygg"}
    assert {"tasks", "deps", "slots", "daemons", "breakers", "meta"} <= {t for _, t in tables}


def test_many_openers_of_a_fresh_database_migrate_it_once(pg_url: str) -> None:
    start = threading.Barrier(6)
    errors: list[BaseException] = []
    versions: list[int] = []

    def opener() -> None:
        start.wait()
        try:
            store = open_store(pg_url)
            versions.append(store.schema_version())
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert versions == [len(MIGRATIONS)] * 6


def test_schema_7_upgrades_keeping_its_tasks_and_external_ids_stay_unique(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a queue made by a ygg of schema 7
        conn.execute("CREATE SCHEMA ygg")
        for script in MIGRATIONS[:7]:
            conn.execute(script)
        conn.execute(
            "INSERT INTO ygg.meta VALUES ('application', 'ygg'), ('schema_version', '7');"
            "INSERT INTO ygg.tasks (title, kind, priority, status, max_attempts, created_us, "
            "external_id) VALUES ('old', 'k', 2, 'queued', 1, 1, 'bd-1')"
        )
    store = open_store(pg_url)
    try:
        assert store.schema_version() == len(MIGRATIONS) >= 8
        assert [(t.title, t.external_id) for t in store.list_tasks()] == [("old", "bd-1")]
        for title in ("a", "b"):  # tasks without an external id: none of them conflicts
            store.enqueue(NewTask(title=title, kind="k"), now_us())
        with pytest.raises(StoreError, match="tasks_external_id"):
            store.enqueue(NewTask(title="again", kind="k", external_id="bd-1"), now_us())
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        (index,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'ygg' AND tablename = 'tasks' "
            "AND indexdef LIKE '%(external_id)%'"
        ).fetchall()
    assert index[0].endswith("WHERE (external_id IS NOT NULL)")


def test_a_newer_schema_is_refused_and_left_untouched(pg_url: str) -> None:
    open_store(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE ygg.meta SET value = '99' WHERE key = 'schema_version'")
    before = snapshot(pg_url)
    with pytest.raises(StoreRefused, match="schema version 99") as refused:
        open_store(pg_url)
    assert refused.value.exit_code == EXIT_DATA == 65
    done = ygg_cli("--db", pg_url, "migrate")
    assert done.returncode == EXIT_DATA, done.stderr
    assert "upgrade ygg" in done.stderr
    assert snapshot(pg_url) == before


def test_a_schema_named_ygg_that_is_not_ours_is_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE SCHEMA ygg")
        conn.execute("CREATE TABLE ygg.tasks (name text)")
        conn.execute("INSERT INTO ygg.tasks VALUES ('someone else''s')")
    before = snapshot(pg_url)
    with pytest.raises(StoreRefused, match="did not create"):
        open_store(pg_url)
    assert snapshot(pg_url) == before


def test_tables_of_other_applications_are_left_alone(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE tasks (id serial PRIMARY KEY, status text)")
        conn.execute("INSERT INTO tasks (status) VALUES ('queued'), ('running')")
    before = [entry for entry in snapshot(pg_url) if entry[0] == "public"]
    store = open_store(pg_url)
    try:
        task = store.enqueue(NewTask(title="ours", kind="k"), now_us())
        (claim,) = store.claim("p", ["k"], 5, slots=2, owner=1, lease_us=US, now_us=now_us())
        store.complete(task, claim.token, Outcome(), now_us())
        assert store.counts() == {"done": 1}
    finally:
        store.close()
    assert [entry for entry in snapshot(pg_url) if entry[0] == "public"] == before


def test_ygg_migrate_creates_the_schema_and_prints_its_version(pg_url: str) -> None:
    done = ygg_cli("--db", pg_url, "migrate", "--json")
    assert done.returncode == 0, done.stderr
    assert f'"schema_version": {len(MIGRATIONS)}' in done.stdout
    # A password given in the URL (libpq allows it) is never printed.
    with_password = pg_url.replace("postgres@", "postgres:s3cret@", 1)
    again = ygg_cli("--db", with_password, "migrate")
    assert again.returncode == 0 and "s3cret" not in again.stdout + again.stderr, again.stderr
    assert again.stdout.endswith(f": schema version {len(MIGRATIONS)}\n")


# --- the server going away -----------------------------------------------------------------------
def test_an_unreachable_database_is_one_sentence_and_exit_1() -> None:
    url = f"postgresql://ygg@127.0.0.1:{free_port()}/queue"
    with pytest.raises(StoreError) as refused:
        open_store(url)
    # Transient by kind: a daemon waits for the server (test_postgres_outage.py); a command
    # says so in one sentence and exits 1.
    assert isinstance(refused.value, StoreUnavailable)
    assert refused.value.exit_code == EXIT_RUNTIME == 1
    assert refused.value.message.startswith("Cannot reach the PostgreSQL database")
    assert "\n" not in refused.value.message
    done = ygg_cli("--db", url, "list")
    assert done.returncode == EXIT_RUNTIME
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cannot reach the PostgreSQL database" in lines[0], done.stderr


def assert_lost_then_back(store: Store, task: int) -> None:
    """The first operation after the loss says so (transient); the next one reconnects."""
    with pytest.raises(StoreConnectionLost) as lost:
        store.get(task)
    assert isinstance(lost.value, StoreUnavailable)
    assert store.get(task).title == "kept"


def test_a_terminated_backend_is_a_lost_connection_and_the_next_call_reconnects(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    store = open_store(pg_url)
    try:
        task = store.enqueue(NewTask(title="kept", kind="k"), now_us())
        ended = pg_cluster.terminate_backends(
            lambda b: b.datname == dbname(pg_url) and b.application_name == "ygg"
        )
        assert ended == 1
        assert_lost_then_back(store, task)
        with store.batch():  # a batch on the new connection works as ever
            store.claim("p", ["k"], 1, slots=1, owner=1, lease_us=US, now_us=now_us())
        assert store.get(task).status == "running"
    finally:
        store.close()


def test_a_server_restart_is_a_lost_connection_and_nothing_committed_is_lost(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    store = open_store(pg_url)
    try:
        task = store.enqueue(NewTask(title="kept", kind="k"), now_us())
        pg_cluster.restart("immediate")
        assert_lost_then_back(store, task)
    finally:
        store.close()


def test_a_connection_lost_inside_a_batch_fails_the_batch_and_nothing_of_it_stays(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    store = open_store(pg_url)
    try:
        kept = store.enqueue(NewTask(title="kept", kind="k"), now_us())

        def batch() -> None:
            with store.batch():
                store.enqueue(NewTask(title="lost with the batch", kind="k"), now_us())
                pg_cluster.terminate_backends(lambda b: b.datname == dbname(pg_url))
                store.enqueue(NewTask(title="never written", kind="k"), now_us())

        with pytest.raises(StoreConnectionLost):
            batch()
        assert [t.id for t in store.list_tasks()] == [kept]
    finally:
        store.close()
