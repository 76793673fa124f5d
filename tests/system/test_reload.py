"""Live reload of a real `ygg loop` process: `ygg reload` and SIGHUP, under load."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, command_pool, run_ygg, wait_until, write_config
from tests.support.runlog import max_overlap_by_pool, read_run_log, run_host_argv
from ygg.store import Store, open_store

MODES = pytest.mark.parametrize("mode", ["--async", "--legacy"])


def sim_pool(name: str, *, slots: int, kinds: str, seconds: float) -> str:
    return (
        f'\n[pools.{name}]\nbackend = "sim"\nseconds = {seconds}\nslots = {slots}\n'
        f"kinds = {kinds}\n"
    )


def running(store: Store) -> int:
    return store.counts().get("running", 0)


def submit(config: Path, kind: str, n: int) -> list[int]:
    ids = []
    for i in range(n):
        result = run_ygg(config, "submit", f"t{i}", "--kind", kind)
        assert result.returncode == 0, result.stderr
        ids.append(int(result.stdout))
    return ids


def test_reload_grows_and_shrinks_slots_without_killing_attempts(tmp_path: Path) -> None:
    config = write_config(tmp_path, sim_pool("sim", slots=1, kinds='["general"]', seconds=1.5))
    store = open_store(str(tmp_path / "queue.db"))
    ids = submit(config, "general", 7)
    with DaemonSet(config) as daemons:
        daemon = daemons.start()
        assert wait_until(lambda: running(store) == 1, 10)
        assert run_ygg(config, "config", "set", "pools.sim.slots", "3").returncode == 0
        answer = run_ygg(config, "reload")
        assert (answer.returncode, answer.stdout.strip()) == (0, "asked 1 daemon(s) to reload")
        assert wait_until(lambda: running(store) == 3, 5), "more slots did not start more work"
        wave = {t.id for t in store.list_tasks(status="running")}
        assert run_ygg(config, "config", "set", "pools.sim.slots", "1").returncode == 0
        daemon.send_signal(signal.SIGHUP)
        assert wait_until(lambda: all(store.get(i).status == "done" for i in wave), 10)
        most = 0
        while not wait_until(lambda: all(store.get(i).status == "done" for i in ids), 0.05):
            most = max(most, running(store))
        assert most <= 1, "fewer slots were not respected once the running wave ended"
        assert daemons.stop(daemon) == 0
    assert all(store.get(i).attempts == 1 for i in ids)  # nothing was stopped and re-run
    events = [json.loads(line) for line in daemons.log_of(daemon).splitlines()]
    reloads = [e["pools"]["sim"] for e in events if e["event"] == "config_reloaded"]
    assert reloads == [3, 1]


@MODES
def test_invalid_configuration_is_refused_and_reported(tmp_path: Path, mode: str) -> None:
    config = write_config(tmp_path, sim_pool("sim", slots=1, kinds='["general"]', seconds=0))
    store = open_store(str(tmp_path / "queue.db"))
    with DaemonSet(config) as daemons:
        daemon = daemons.start(mode)
        assert wait_until(lambda: bool(store.daemons()), 10)
        (tmp_path / "ygg.d").mkdir()
        (tmp_path / "ygg.d" / "50-local.toml").write_text("[pools.sim]\nslots = 0\n")
        refused = run_ygg(config, "reload")  # the CLI checks the file before asking anyone
        assert refused.returncode == 78 and "slots" in refused.stderr
        daemon.send_signal(signal.SIGHUP)  # the daemon, asked anyway, keeps its configuration

        def reported() -> str | None:
            status = json.loads(
                run_ygg(
                    None, "--db", str(tmp_path / "queue.db"), "status", "--json", "--no-probe"
                ).stdout
            )
            return status["daemons"][0]["config_error"]

        assert wait_until(lambda: reported() is not None, 10)
        assert "pools.sim.slots" in (reported() or "")
        (tmp_path / "ygg.d" / "50-local.toml").unlink()
        [task] = submit(config, "general", 1)
        assert wait_until(lambda: store.get(task).status == "done", 10), "the daemon stopped"
        daemon.send_signal(signal.SIGHUP)
        assert wait_until(lambda: reported() is None, 10)  # a good reload clears the report
        assert daemons.stop(daemon) == 0
    assert '"config_reload_failed"' in daemons.log_of(daemon)


@MODES
def test_reload_adds_and_removes_pools(tmp_path: Path, mode: str) -> None:
    config = write_config(tmp_path, sim_pool("old", slots=1, kinds='["a"]', seconds=1.0))
    store = open_store(str(tmp_path / "queue.db"))
    [old_task] = submit(config, "a", 1)
    with DaemonSet(config) as daemons:
        daemon = daemons.start(mode)
        assert wait_until(lambda: running(store) == 1, 10)
        write_config(tmp_path, sim_pool("new", slots=1, kinds='["b"]', seconds=0))
        daemon.send_signal(signal.SIGHUP)
        [new_task] = submit(config, "b", 1)
        assert wait_until(lambda: store.get(new_task).status == "done", 10)
        assert wait_until(lambda: store.get(old_task).status == "done", 10)
        assert daemons.stop(daemon) == 0
    assert (store.get(old_task).pool, store.get(old_task).attempts) == ("old", 1)
    assert store.get(new_task).pool == "new"
    assert '"pool_retired"' in daemons.log_of(daemon)


def test_sighup_cycling_slots_under_load(tmp_path: Path) -> None:
    """Slots 1 → 3 → 2 → 1 → 3 while 30 command tasks run: judged at the host side."""
    runs_log = tmp_path / "runs.log"
    pools = command_pool("batch", run_host_argv(runs_log), slots=1, kinds=["batch"])
    config = write_config(tmp_path, pools)
    store = open_store(str(tmp_path / "queue.db"))
    ids = [
        int(run_ygg(config, "submit", f"t{i}", "--kind", "batch", "--param", "seconds=0.3").stdout)
        for i in range(30)
    ]
    with DaemonSet(config) as daemons:
        daemon = daemons.start()
        for slots in (3, 2, 1, 3):
            assert wait_until(lambda: running(store) >= 1, 10)
            assert run_ygg(config, "config", "set", "pools.batch.slots", str(slots)).returncode == 0
            daemon.send_signal(signal.SIGHUP)
            time.sleep(0.4)  # let the load run a while under each setting
        assert wait_until(lambda: all(store.get(i).status == "done" for i in ids), 30)
        assert daemons.stop(daemon) == 0
    runs = read_run_log(runs_log)
    assert sorted(int(r.task) for r in runs) == sorted(ids)  # each ran once: nothing lost
    assert all(store.get(i).attempts == 1 for i in ids)  # nothing was stopped and re-run
    assert max_overlap_by_pool(runs, set())["batch"] <= 3  # never past the largest setting


def test_reload_without_a_daemon_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, sim_pool("sim", slots=1, kinds='["general"]', seconds=0))
    answer = run_ygg(config, "reload")
    assert answer.returncode == 1
    assert answer.stderr.strip() == (
        "ygg: No daemon on this machine runs on this queue; nothing was reloaded."
    )


@MODES
def test_reload_changes_the_lease_of_running_work(tmp_path: Path, mode: str) -> None:
    config = write_config(
        tmp_path,
        sim_pool("sim", slots=1, kinds='["general"]', seconds=30),
        daemon="lease_seconds = 1\ndrain_seconds = 1",
    )
    store = open_store(str(tmp_path / "queue.db"))
    [task] = submit(config, "general", 1)

    def lease_left_s() -> float:
        row = store.conn.execute("SELECT lease_expires_us FROM tasks WHERE id = ?", (task,))
        return (row.fetchone()[0] - time.time() * 1e6) / 1e6

    with DaemonSet(config) as daemons:
        daemon = daemons.start(mode)
        assert wait_until(lambda: running(store) == 1, 10)
        assert lease_left_s() <= 1.0
        assert run_ygg(config, "config", "set", "daemon.lease_seconds", "20").returncode == 0
        daemon.send_signal(signal.SIGHUP)
        assert wait_until(lambda: lease_left_s() > 5.0, 10), "renewals kept the old lease"
        assert daemons.stop(daemon) == 0
