"""Watching a real `ygg loop`: sd_notify datagrams on a socket standing in for systemd, and the
status server's /metrics, /healthz and /status over real HTTP on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.web import server_port

POOL = '\n[pools.sim]\nbackend = "sim"\nseconds = 0\nslots = 2\nkinds = ["general"]\n'


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[socket.socket]:
    """A datagram socket where systemd's notify socket would be."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(10)
    yield sock
    sock.close()


def next_message(sock: socket.socket, wanted: str) -> str:
    """The next datagram containing `wanted`, skipping STATUS-only updates in between."""
    for _ in range(50):
        message = sock.recv(4096).decode()
        if wanted in message.split("\n"):
            return message
    raise AssertionError(f"no {wanted} from the daemon")


def test_notify_ready_reload_stopping(tmp_path: Path, systemd: socket.socket) -> None:
    config = write_config(tmp_path, POOL, daemon='status_listen = "127.0.0.1:0"')
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    with DaemonSet(config, env=env) as daemons:
        daemon = daemons.start()
        ready = next_message(systemd, "READY=1")
        assert "STATUS=running 0/2" in ready
        daemon.send_signal(signal.SIGHUP)
        reloading = next_message(systemd, "RELOADING=1")
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading.split("\n"))
        next_message(systemd, "READY=1")
        daemon.send_signal(signal.SIGTERM)
        next_message(systemd, "STOPPING=1")
        assert daemon.wait(15) == 0


def test_status_server_metrics_health_and_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, POOL, daemon='status_listen = "127.0.0.1:0"')
    for i in range(5):
        assert run_ygg(config, "submit", f"t{i}").returncode == 0
    with DaemonSet(config) as daemons:
        daemon = daemons.start()

        assert wait_until(lambda: server_port(daemons, daemon) is not None, 10)
        base = f"http://127.0.0.1:{server_port(daemons, daemon)}"
        with httpx.Client(base_url=base, timeout=5, trust_env=False) as http:
            assert wait_until(lambda: http.get("/status").json()["tasks"]["done"] == 5, 10)
            status = http.get("/status").json()
            [pool] = status["pools"]
            assert (pool["name"], pool["slots"], pool["breaker"]) == ("sim", 2, "closed")
            assert http.get("/healthz").status_code == 200
            families = {
                f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)
            }
        claimed = sum(
            s.value for s in families["ygg_tasks_claimed"].samples if s.name.endswith("_total")
        )
        assert claimed == 5
        done = [s for s in families["ygg_tasks"].samples if s.labels.get("status") == "done"]
        assert done and done[0].value == 5
        for histogram in ("ygg_queue_wait_seconds", "ygg_attempt_duration_seconds"):
            counts = [s for s in families[histogram].samples if s.name == histogram + "_count"]
            assert sum(s.value for s in counts) == 5, histogram
        # The alert rules' watchdog signal (deploy/prometheus/ygg-alerts.yml): every periodic
        # loop's age, well inside the window of a healthy daemon.
        window_s = families["ygg_progress_window_seconds"].samples[0].value
        ages = {s.labels["loop"]: s.value for s in families["ygg_progress_age_seconds"].samples}
        assert set(ages) == {"reaper", "lease_keeper"}
        assert all(0 <= age < window_s for age in ages.values()), (ages, window_s)
        assert daemons.stop(daemon) == 0


def test_public_status_address_needs_a_token(tmp_path: Path) -> None:
    config = write_config(tmp_path, POOL, daemon='status_listen = "0.0.0.0:0"')
    refused = run_ygg(config, "loop", "--until-idle")
    assert refused.returncode == 78
    assert "token" in refused.stderr and "Traceback" not in refused.stderr
    allowed = run_ygg(config, "loop", "--until-idle", env={"YGG_STATUS_TOKEN": "s3cret"})
    assert allowed.returncode == 0, allowed.stderr
    assert "s3cret" not in allowed.stderr  # the token never reaches the log
