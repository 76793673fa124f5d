"""`ygg loop` on a PostgreSQL queue: two daemons (either loop mode) drain a sim pool and a
command pool together; the slot limits hold across them, judged at the host side (cmd_host.py
logs each command's start and end), and every task runs exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cmdlog import cmd_argv, max_overlap, read_cmd_log, runs_by_task
from tests.support.daemons import DaemonSet, command_pool, run_ygg, wait_until, write_config
from tests.support.pg import PgCluster
from ygg import api
from ygg.config import load
from ygg.store import NewTask, open_store
from ygg.store.model import now_us

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

TASKS = 12


@pytest.mark.parametrize(
    "modes",
    [("--async", "--async"), ("--legacy", "--legacy"), ("--async", "--legacy")],
    ids=["async+async", "legacy+legacy", "async+legacy"],
)
def test_two_daemons_drain_a_postgresql_queue_within_the_slots(
    tmp_path: Path, pg_url: str, modes: tuple[str, str]
) -> None:
    log = tmp_path / "cmd.log"
    pools = (
        '\n[pools.sim]\nbackend = "sim"\nseconds = 0.05\nslots = 2\nkinds = ["chat"]\n'
        + command_pool("batch", cmd_argv(log), slots=2, kinds=["batch"])
    )
    path = write_config(tmp_path, pools, db=pg_url, daemon="poll_seconds = 0.2")
    config = load(str(path))
    assert config.daemon.db == pg_url
    done = run_ygg(path, "migrate")
    assert done.returncode == 0, done.stderr
    store = open_store(pg_url)
    try:
        for i in range(TASKS):
            api.submit(store, api.new_task(config, title=f"chat {i}", kind="chat"))
            api.submit(
                store,
                api.new_task(config, title=f"batch {i}", kind="batch", params={"seconds": "0.1"}),
            )
        with DaemonSet(path) as daemons:
            started = [daemons.start(mode, "--until-idle") for mode in modes]
            for daemon in started:
                assert daemon.wait(90) == 0, daemons.log_of(daemon)
        assert store.counts() == {"done": 2 * TASKS}
        finished = store.list_tasks(limit=100)
        assert {t.pool for t in finished} == {"sim", "batch"}
        assert all(t.attempts == 1 for t in finished)
    finally:
        store.close()
    runs = read_cmd_log(log)
    assert len(runs) == TASKS
    assert all(len(task_runs) == 1 for task_runs in runs_by_task(runs).values())
    assert max_overlap(runs) <= 2
    listed = run_ygg(path, "list", "--json")
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize("mode", ["--async", "--legacy"])
def test_a_task_from_another_machine_wakes_the_daemon_through_the_database(
    tmp_path: Path, pg_cluster: PgCluster, pg_url: str, mode: str
) -> None:
    """No datagram reaches a daemon on another machine: the store's NOTIFY does. Its safety
    poll is two minutes here, so only the hint can start the task within the wait. A task
    submitted while the listening connection is cut is found when it reconnects."""
    pools = '\n[pools.sim]\nbackend = "sim"\nseconds = 0\nslots = 1\nkinds = ["chat"]\n'
    daemon_settings = "poll_seconds = 120\nlease_seconds = 120"
    path = write_config(tmp_path, pools, db=pg_url, daemon=daemon_settings)
    store = open_store(pg_url)
    try:
        with DaemonSet(path) as daemons:
            daemon = daemons.start(mode)
            assert wait_until(lambda: "store_listening" in daemons.log_of(daemon), 30)
            first = store.enqueue(NewTask(title="from afar", kind="chat"), now_us())
            assert wait_until(lambda: store.get(first).status == "done", 30)

            dbname = pg_url.rsplit("/", 1)[1]
            cut = pg_cluster.terminate_backends(
                lambda b: b.datname == dbname and b.application_name == "ygg-listen"
            )
            assert cut == 1
            second = store.enqueue(NewTask(title="while away", kind="chat"), now_us())
            assert wait_until(lambda: store.get(second).status == "done", 30)
            assert daemons.log_of(daemon).count("store_listening") == 2
            assert daemons.stop(daemon) == 0, daemons.log_of(daemon)
    finally:
        store.close()
