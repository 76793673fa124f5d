"""Debian's Prometheus binaries for the alert tests, and a real server run on 127.0.0.1.

A machine without them skips these tests and says why; with YGG_TEST_PROMETHEUS=1 (which
`.ci/run` sets after installing the `prometheus` package) a missing binary fails them instead.

    with PrometheusServer(config_text, workdir) as prom:
        alerts = prom.get("/api/v1/alerts")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support.daemons import wait_until

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "ygg-alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "ygg-alerts.test.yml"
REQUIRED_ENV = "YGG_TEST_PROMETHEUS"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def require(binary: str) -> str:
    """The path of `binary` (promtool, prometheus); skips, or fails when required, without."""
    path = shutil.which(binary)
    if path is not None:
        return path
    reason = f"{binary} is not installed (Debian: apt-get install prometheus)"
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRED_ENV}=1 requires it")
    pytest.skip(f"{reason}; set {REQUIRED_ENV}=1 to make this a failure")


def free_port() -> int:
    """A port free on 127.0.0.1 now; Prometheus takes a fixed port, not 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """`prometheus` on 127.0.0.1 with its storage in `workdir`; killed and reaped on exit."""

    def __init__(self, config_text: str, workdir: Path) -> None:
        self.binary = require("prometheus")
        self.workdir = workdir
        self.config = workdir / "prometheus.yml"
        self.config.write_text(config_text)
        self.log_path = workdir / "prometheus.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        self.port = free_port()
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if not wait_until(self._ready, START_TIMEOUT_S, tick_s=0.2):
            raise AssertionError(f"prometheus did not become ready:\n{self.log()}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> Any:
        """The `data` of a successful API answer."""
        answer = httpx.get(f"{self.url}{path}", timeout=5, trust_env=False)
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM and a bounded wait, then SIGKILL: the process is gone when this returns."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()

    def __enter__(self) -> PrometheusServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
