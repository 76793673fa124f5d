"""The database server down, at a daemon's start and mid-run: the daemon waits with backoff
(logged, capped, jittered), answers /healthz 503 with the reason, tells systemd so and keeps
its watchdog fed; one-shot commands print one sentence and exit 1; once the server is back the
queued work drains with nothing lost, judged at the host side (run_host.py logs every run)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.daemons import DaemonSet, command_pool, run_ygg, wait_until, write_config
from tests.support.pg import PgCluster
from tests.support.runlog import (
    alive_pids,
    max_overlap_by_pool,
    overlapping_runs,
    read_run_log,
    run_host_argv,
)
from tests.support.web import server_port
from tests.system.test_watchdog import PingRecorder

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

TASKS = 6
SLOTS = 2
WATCHDOG_S = 2.0  # WatchdogSec; the stall window is 10 s, which the outage at start outlasts


def events(log_text: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in log_text.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def healthz(base: str) -> tuple[int, str]:
    try:
        answer = httpx.get(f"{base}/healthz", timeout=5, trust_env=False)
    except httpx.HTTPError as exc:
        return 0, repr(exc)
    return answer.status_code, answer.text


def store_down_s(base: str) -> float:
    """ygg_store_unavailable_seconds as /metrics has it."""
    text = httpx.get(f"{base}/metrics", timeout=5, trust_env=False).text
    for line in text.splitlines():
        if line.startswith("ygg_store_unavailable_seconds "):
            return float(line.split()[1])
    raise AssertionError("no ygg_store_unavailable_seconds in /metrics")


def done_count(url: str) -> int:
    with psycopg.connect(url, application_name="test-observer", connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM ygg.tasks WHERE status = 'done'").fetchone()
    assert row is not None
    return int(row[0])


def assert_one_sentence_exit_1(path: Path, *args: str) -> None:
    done = run_ygg(path, *args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("ygg: Cannot reach the PostgreSQL database"), lines


def test_the_database_down_at_start_and_mid_run(
    tmp_path: Path, pg_cluster: PgCluster, pg_url: str
) -> None:
    runs_log = tmp_path / "runs.log"
    pools = command_pool("batch", run_host_argv(runs_log), slots=SLOTS, kinds=["batch"])
    # A lease longer than the outage mid-run: no attempt is fenced (see the test below).
    daemon_settings = 'status_listen = "127.0.0.1:0"\npoll_seconds = 0.2\nlease_seconds = 10'
    path = write_config(tmp_path, pools, db=pg_url, daemon=daemon_settings)
    assert run_ygg(path, "migrate").returncode == 0
    notify = PingRecorder(tmp_path / "notify.sock")
    env = {
        "YGG_STATUS_TOKEN": "",
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": str(int(WATCHDOG_S * 1_000_000)),
    }
    pg_cluster.halt()
    try:
        assert_one_sentence_exit_1(path, "submit", "early", "--kind", "batch")
        assert_one_sentence_exit_1(path, "status")
        with DaemonSet(path, env=env) as daemons:
            daemon = daemons.start()
            assert wait_until(lambda: server_port(daemons) is not None, 30), daemons.log_of(daemon)
            base = f"http://127.0.0.1:{server_port(daemons)}"
            # Down at start: the daemon waits, with backoff, and says why.
            tries = lambda: events(daemons.log_of(daemon), "store_unavailable")  # noqa: E731
            assert wait_until(lambda: len(tries()) >= 4, 30), daemons.log_of(daemon)
            delays = [float(str(e["retry_in_s"])) for e in tries() if e["attempt"] in (1, 2, 3)]
            assert delays == sorted(delays) and delays[0] < delays[-1], tries()
            status, text = healthz(base)
            assert status == 503 and "store unavailable" in text, (status, text)
            assert daemon.poll() is None
            # Past the stall window (10 s) with no reaper yet: the watchdog is still fed.
            began = time.monotonic()
            assert wait_until(lambda: time.monotonic() - began > 11, 15)
            assert notify.since(began + 9), "the watchdog went silent while waiting"
            assert any("EXTEND_TIMEOUT_USEC=" in m for m in notify.other), notify.other
            assert not any("READY=1" in m for m in notify.other), notify.other
            assert any("STATUS=store unavailable" in m for m in notify.other), notify.other

            pg_cluster.resume()
            assert wait_until(lambda: healthz(base)[0] == 200, 40), healthz(base)
            assert any("READY=1" in m for m in notify.other), notify.other
            assert store_down_s(base) == 0
            for i in range(TASKS):
                submitted = run_ygg(
                    path, "submit", f"t{i}", "--kind", "batch", "--param", "seconds=1.5"
                )
                assert submitted.returncode == 0, submitted.stderr

            # Down mid-run, while attempts run: /healthz says so, commands fail in one sentence.
            assert wait_until(lambda: len(read_run_log(runs_log)) >= SLOTS, 30)
            pg_cluster.halt()
            assert wait_until(lambda: healthz(base)[0] == 503, 30), healthz(base)
            assert "store unavailable" in healthz(base)[1]
            assert store_down_s(base) > 0
            assert_one_sentence_exit_1(path, "status")
            assert wait_until(lambda: all(r.finished for r in read_run_log(runs_log)), 30)
            pg_cluster.resume()
            assert wait_until(lambda: done_count(pg_url) == TASKS, 90), daemons.log_of(daemon)
            assert wait_until(lambda: healthz(base)[0] == 200, 30), healthz(base)
            log_text = daemons.log_of(daemon)
            assert daemons.stop(daemon) == 0, log_text
    finally:
        pg_cluster.resume()
        notify.close()
    assert events(log_text, "store_available"), log_text
    runs = read_run_log(runs_log)
    alive = alive_pids(runs)
    assert not overlapping_runs(runs, alive), runs
    assert max_overlap_by_pool(runs, alive).get("batch", 0) <= SLOTS
    assert {r.task for r in runs if r.finished} == {r.task for r in runs}
    assert len({r.task for r in runs}) == TASKS


@pytest.mark.parametrize("mode", ["--async", "--legacy"])
def test_a_daemon_waiting_for_the_database_at_start_stops_cleanly(
    tmp_path: Path, pg_cluster: PgCluster, pg_url: str, mode: str
) -> None:
    """Both loop modes wait for a database that is down as they start, and a SIGTERM
    meanwhile ends the wait: exit 0, not a crash and not a hang."""
    pools = '\n[pools.sim]\nbackend = "sim"\nseconds = 0\nslots = 1\nkinds = ["chat"]\n'
    path = write_config(tmp_path, pools, db=pg_url)
    pg_cluster.halt()
    try:
        with DaemonSet(path) as daemons:
            daemon = daemons.start(mode)
            tries = lambda: events(daemons.log_of(daemon), "store_unavailable")  # noqa: E731
            assert wait_until(lambda: len(tries()) >= 2, 30), daemons.log_of(daemon)
            assert daemon.poll() is None
            assert daemons.stop(daemon, timeout_s=30) == 0, daemons.log_of(daemon)
            log_text = daemons.log_of(daemon)
    finally:
        pg_cluster.resume()
    assert "Traceback" not in log_text, log_text
    assert events(log_text, "dispatcher_stopped"), log_text


def test_an_outage_longer_than_a_lease_stops_the_attempt_before_its_lease_runs_out(
    tmp_path: Path, pg_cluster: PgCluster, pg_url: str
) -> None:
    """A daemon on another machine judges this one by its leases alone: once the database
    is back, it may take back a task whose lease ran out during the outage. So a daemon that
    cannot renew for most of a lease stops the attempt (`lease_fenced`) rather than let a
    second run start beside it; the task runs again once the database is back, never twice
    at once."""
    runs_log = tmp_path / "runs.log"
    pools = command_pool("batch", run_host_argv(runs_log), slots=1, kinds=["batch"])
    path = write_config(tmp_path, pools, db=pg_url, daemon="poll_seconds = 0.2\nlease_seconds = 2")
    submitted = run_ygg(path, "submit", "long", "--kind", "batch", "--param", "seconds=5")
    assert submitted.returncode == 0, submitted.stderr
    try:
        with DaemonSet(path) as daemons:
            daemon = daemons.start()
            assert wait_until(lambda: len(read_run_log(runs_log)) == 1, 30)
            pg_cluster.halt()
            fenced = lambda: events(daemons.log_of(daemon), "lease_fenced")  # noqa: E731
            assert wait_until(lambda: bool(fenced()), 30), daemons.log_of(daemon)
            assert wait_until(lambda: not alive_pids(read_run_log(runs_log)), 10)
            first = read_run_log(runs_log)[0]
            assert not first.finished  # stopped mid-run, before its lease ran out
            pg_cluster.resume()
            assert wait_until(lambda: done_count(pg_url) == 1, 60), daemons.log_of(daemon)
            assert daemons.stop(daemon) == 0, daemons.log_of(daemon)
    finally:
        pg_cluster.resume()
    runs = read_run_log(runs_log)
    assert len(runs) == 2 and runs[1].finished, runs
    assert not overlapping_runs(runs, alive_pids(runs)), runs
