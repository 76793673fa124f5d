"""`ygg loop` on a PostgreSQL queue: two daemons (either loop mode) drain a sim pool and a
command pool together; the slot limits hold across them, judged at the host side (cmd_host.py
logs each command's start and end), and every task runs exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cmdlog import cmd_argv, max_overlap, read_cmd_log, runs_by_task
from tests.support.daemons import DaemonSet, command_pool, run_ygg, write_config
from ygg import api
from ygg.config import load
from ygg.store import open_store

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
