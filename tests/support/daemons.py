"""Real `ygg` processes for system and fault tests: daemons with bounded stops, CLI calls.

    with DaemonSet(config_path) as daemons:
        first = daemons.start("--async")
        daemons.kill(first)                      # SIGKILL, reaped
        assert daemons.stop(daemons.start()) == 0  # SIGTERM, bounded wait

Every process a DaemonSet started is killed and reaped when it closes, and so is every process
it was told about with `adopt` (say, orphans of a killed daemon).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 60.0


def ygg_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def write_config(
    directory: Path, pools: str, *, daemon: str = "", defaults: str = "", db: str = "queue.db"
) -> Path:
    """Writes directory/ygg.toml (queue in directory/queue.db, JSON logs) and returns its path."""
    path = directory / "ygg.toml"
    if "status_listen" not in daemon:  # many test daemons share this machine's ports
        daemon += '\nstatus_listen = ""'
    path.write_text(
        f'[daemon]\ndb = "{db}"\nlog_format = "json"\n{daemon}\n'
        f"[defaults]\nbackoff_seconds = 0.05\n{defaults}\n{pools}"
    )
    return path


def command_pool(name: str, argv: Sequence[str], *, slots: int, kinds: Sequence[str]) -> str:
    return (
        f'\n[pools.{name}]\nbackend = "command"\nargv = {toml_list(argv)}\n'
        f"slots = {slots}\nkinds = {toml_list(kinds)}\n"
    )


def wait_until(predicate: Callable[[], bool], timeout_s: float, tick_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(tick_s)
    return predicate()


def run_ygg(
    config: Path | None,
    *args: str,
    prefix: Sequence[str] = (),
    timeout_s: float = CLI_TIMEOUT_S,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """One `ygg` command (after `prefix`, e.g. an nsenter), its output captured as text."""
    config_args = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ygg", *config_args, *args],
        env=ygg_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout_s,
        check=False,
    )


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


class DaemonSet:
    """Starts `ygg loop` processes on one configuration and guarantees they are stopped."""

    def __init__(
        self, config: Path, *, prefix: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self.env = ygg_env(env)
        self.prefix = list(prefix)
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self._files: list[IO[bytes]] = []
        self._adopted: set[int] = set()

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log_path = self.config.parent / f"daemon-{len(self.started)}.log"
        log_file = log_path.open("wb")
        self._files.append(log_file)
        process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "ygg",
                "--config",
                str(self.config),
                "loop",
                *args,
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        self.started.append(process)
        self.logs.append(log_path)
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        return self.logs[self.started.index(process)].read_text(errors="replace")

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL, then reap: the process is gone when this returns."""
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)

    def stop(self, process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and a bounded wait; SIGKILL if the wait runs out (then the status is -9)."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(process)
            return process.wait()

    def adopt(self, pids: Sequence[int]) -> None:
        """Processes to kill at close, e.g. the commands of a killed daemon."""
        self._adopted.update(pids)

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)  # a stopped process cannot die
                self.kill(process)
        for pid in self._adopted:
            kill_pid(pid)
        for log_file in self._files:
            log_file.close()

    def __enter__(self) -> DaemonSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
