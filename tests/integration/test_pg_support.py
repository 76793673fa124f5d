"""The throwaway PostgreSQL cluster itself (tests/support/pg.py) and the tier's switch."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.support.daemons import wait_until
from tests.support.pg import PgCluster

REPO = Path(__file__).resolve().parents[2]
ROWS = 300


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_fresh_database_per_test_on_a_loopback_only_server(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    assert pg_url.startswith(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (dbname(pg_url),)
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses',"
                " 'fsync', 'full_page_writes', 'synchronous_commit', 'max_connections',"
                " 'unix_socket_directories')"
            ).fetchall()
        )
    assert settings == {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "full_page_writes": "off",
        "synchronous_commit": "on",
        "max_connections": "200",
        "unix_socket_directories": str(pg_cluster.socket_dir),
    }
    owners = set()
    for proc in pg_cluster.server_processes():
        # a backend of a connection closed a moment ago (an earlier test's) may exit meanwhile
        with contextlib.suppress(psutil.NoSuchProcess):
            owners.add(proc.username())
    assert owners and (os.geteuid() != 0 or "root" not in owners)


def test_create_database_gives_a_url_that_works_until_dropped(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database("support_create")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        conn.commit()
        assert conn.execute("SELECT sum(n) FROM t").fetchone() == (3,)
    pg_cluster.drop_database("support_create")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url, connect_timeout=5).close()


def test_immediate_restart_keeps_every_acknowledged_commit(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    """A crash-like restart loses no commit the client saw: what fault tests count on."""
    old_postmaster = pg_cluster.postmaster_pid()
    with psycopg.connect(pg_url, autocommit=True) as before:
        before.execute("CREATE TABLE t (n int PRIMARY KEY)")
        for n in range(ROWS):  # one commit each, the last ones just before the crash
            before.execute("INSERT INTO t VALUES (%s)", (n,))
        pg_cluster.restart(mode="immediate")
        with pytest.raises(psycopg.OperationalError):
            before.execute("SELECT 1")
    assert pg_cluster.postmaster_pid() not in (None, old_postmaster)
    with psycopg.connect(pg_url) as after:
        assert after.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)


def test_terminate_backends_by_application_name_or_predicate(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    victims = [psycopg.connect(pg_url, application_name="victim") for _ in range(2)]
    bystander = psycopg.connect(pg_url, application_name="bystander")
    try:
        assert pg_cluster.terminate_backends("victim") == 2
        for conn in victims:
            with pytest.raises(psycopg.OperationalError, match="administrator command"):
                conn.execute("SELECT 1")
        assert bystander.execute("SELECT 1").fetchone() == (1,)
        assert pg_cluster.terminate_backends(lambda b: b.datname == dbname(pg_url)) == 1
        with pytest.raises(psycopg.OperationalError):
            bystander.execute("SELECT 1")
        assert pg_cluster.terminate_backends("victim") == 0
    finally:
        for conn in [*victims, bystander]:
            conn.close()


@pytest.mark.postgres
def test_stop_leaves_no_postgres_process_and_no_files() -> None:
    cluster = PgCluster().start()  # its own: stopping the session's would end the others' tests
    root = cluster.root
    processes = cluster.server_processes()
    assert root is not None and len(processes) >= 2  # the postmaster and its helpers
    with cluster.connect() as conn:
        conn.execute("SELECT 1")
    cluster.stop()
    cluster.stop()  # a second stop (the atexit hook's, say) is a no-op
    assert not [proc for proc in processes if proc.is_running()]
    assert not [proc for proc in postgres_processes() if str(root) in command_line(proc)]
    assert not root.exists()


@pytest.mark.postgres
def test_a_killed_owner_leaves_no_postgres_process(tmp_path: Path) -> None:
    """SIGKILL skips atexit and finalizers: the guard process stops the server anyway."""
    script = "from tests.support.pg import PgCluster\nc = PgCluster().start()\n"
    script += "print(c.postmaster_pid(), c.root, flush=True)\nimport time; time.sleep(120)\n"
    owner = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        pid_text, root_text = owner.stdout.readline().split()
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    assert wait_until(lambda: not psutil.pid_exists(int(pid_text)), timeout_s=30)
    assert wait_until(lambda: not Path(root_text).exists(), timeout_s=10)


def postgres_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            found.append(proc)
    return found


def command_line(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.NoSuchProcess:  # gone between the listing and the look
        return ""


def run_tier(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """This file's terminate test in a pytest of its own, with PostgreSQL's binaries absent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YGG_")}
    env.update(env_extra, YGG_PG_BIN="/nonexistent/pg/bin")
    node = "tests/integration/test_pg_support.py::test_terminate_backends_by_application_name"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", f"{node}_or_predicate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_binaries_the_tier_skips_with_its_reason() -> None:
    done = run_tier({})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tier of PostgreSQL tests: off (/nonexistent/pg/bin/initdb is missing" in done.stdout
    assert "PostgreSQL tier off: /nonexistent/pg/bin/initdb is missing" in done.stdout
    assert "1 skipped" in done.stdout


def test_without_binaries_a_required_tier_fails_the_run() -> None:
    done = run_tier({"YGG_TEST_POSTGRES": "1"})
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "YGG_TEST_POSTGRES=1 but the PostgreSQL tier cannot run" in done.stderr
