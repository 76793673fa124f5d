"""A daemon on PostgreSQL while its connections are cut and the server restarts: it waits,
reconnects and finishes every task, each run exactly once and never past the slots, judged at
the host side (cmd_host.py logs every command's start and end)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.support.cmdlog import cmd_argv, max_overlap, read_cmd_log, runs_by_task
from tests.support.daemons import DaemonSet, command_pool, run_ygg, wait_until, write_config
from tests.support.pg import PgCluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

TASKS = 12


def counts(url: str) -> dict[str, int]:
    """Read with a connection of the test's own (not named `ygg`), so a cut spares it."""
    with psycopg.connect(url, application_name="test-observer", connect_timeout=5) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM ygg.tasks GROUP BY 1").fetchall())


def started_runs(log: Path) -> int:
    return len(read_cmd_log(log))


@pytest.mark.parametrize("mode", ["--async", "--legacy"])
def test_cut_connections_and_a_server_restart_lose_nothing(
    tmp_path: Path, pg_cluster: PgCluster, pg_url: str, mode: str
) -> None:
    log = tmp_path / "cmd.log"
    pools = command_pool("batch", cmd_argv(log), slots=2, kinds=["batch"])
    path = write_config(tmp_path, pools, db=pg_url, daemon="poll_seconds = 0.2")
    for i in range(TASKS):
        done = run_ygg(path, "submit", f"batch {i}", "--kind", "batch", "--param", "seconds=0.3")
        assert done.returncode == 0, done.stderr
    dbname = pg_url.rsplit("/", 1)[1]

    def ours(backend: object) -> bool:
        return getattr(backend, "datname", None) == dbname and (
            getattr(backend, "application_name", None) == "ygg"
        )

    with DaemonSet(path) as daemons:
        daemon = daemons.start(mode, "--until-idle")
        assert wait_until(lambda: started_runs(log) >= 2, 30)
        assert pg_cluster.terminate_backends(ours) >= 1  # mid-claim, mid-renewal, mid-outcome
        assert wait_until(lambda: started_runs(log) >= 5, 30)
        pg_cluster.restart("immediate")
        assert wait_until(lambda: started_runs(log) >= 8, 60)
        pg_cluster.terminate_backends(ours)
        assert daemon.wait(120) == 0, daemons.log_of(daemon)
        log_text = daemons.log_of(daemon)
    assert counts(pg_url) == {"done": TASKS}
    runs = read_cmd_log(log)
    assert all(len(task_runs) == 1 for task_runs in runs_by_task(runs).values()), runs
    assert len(runs) == TASKS
    assert max_overlap(runs) <= 2
    assert "connection to the database was lost" in log_text or "Cannot reach" in log_text
