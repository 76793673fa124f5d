"""The command backend: argv without a shell, prompt on stdin, result from stdout.

The process leads its own process group, so a timeout or a cancel kills everything it
started, not just the first process. It also dies with the daemon (PR_SET_PDEATHSIG): a daemon
killed with SIGKILL must not leave an attempt running that the next owner will run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any

import psutil

from ygg.backends.base import MAX_RESPONSE_BYTES, AttemptFailed, Job
from ygg.config import PoolConfig
from ygg.store.model import Outcome

STDERR_TAIL_BYTES = 2000
READ_CHUNK_BYTES = 64 * 1024
_PR_SET_PDEATHSIG = 1


# What a command inherits from the daemon's environment: enough to find programs and speak the
# locale. Nothing else: the environment holds the status token, API keys and the credentials
# directory, which a job must never see.
INHERITED = ("PATH", "HOME", "LANG", "TZ")


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value for key, value in environ.items() if key in INHERITED or key.startswith("LC_")
    }


def command_env(job: Job, pool: PoolConfig) -> dict[str, str]:
    """A clean environment: the allow-listed variables, the pool's `env` table, then the task's
    YGG_* variables (which neither can override)."""
    env = inherited_env(os.environ)
    env.update(pool.env)
    env.update(
        {
            "YGG_TASK_ID": str(job.task_id),
            "YGG_ATTEMPT": str(job.attempt),
            "YGG_POOL": pool.name,
            "YGG_KIND": job.kind,
            "YGG_PRIORITY": str(job.priority),
        }
    )
    if job.queue:
        env["YGG_QUEUE"], env["YGG_DAEMON"] = job.queue, str(job.owner)
    for key, value in job.params.items():
        env["YGG_PARAM_" + re.sub(r"[^A-Za-z0-9_]", "_", key).upper()] = str(value)
    return env


def kill_orphans(queue: str, dead_owners: Collection[int]) -> list[int]:
    """Kills this machine's processes left by `queue`'s daemons that died.

    A killed daemon's death signal reaches only the commands it started, not what they started
    in turn; those carry the attempt's environment, which names the queue and the daemon."""
    wanted = {str(owner) for owner in dead_owners}
    killed = []
    for process in psutil.process_iter():
        try:
            env = process.environ()
            if env.get("YGG_QUEUE") == queue and env.get("YGG_DAEMON") in wanted:
                process.kill()
                killed.append(process.pid)
        except psutil.Error:  # gone, or another user's: not ours to judge
            continue
    return killed


def _die_with(parent_pid: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: SIGKILL it when the daemon dies."""
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the daemon died before the line above took effect
            os._exit(1)

    return arm


def spawn_options() -> dict[str, Any]:
    """Options for both subprocess APIs: own process group, and death with the daemon."""
    options: dict[str, Any] = {"start_new_session": True}
    if sys.platform == "linux":
        options["preexec_fn"] = _die_with(os.getpid())
    return options


def exit_failure(returncode: int, stderr: bytes) -> AttemptFailed:
    tail = stderr[-STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()
    how = (
        f"killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
    )
    return AttemptFailed(f"command {how}" + (f": {tail}" if tail else ""), retryable=True)


def too_much_output() -> AttemptFailed:
    return AttemptFailed(
        f"command wrote more than {MAX_RESPONSE_BYTES} bytes to stdout", retryable=False
    )


def cannot_start(pool: PoolConfig, exc: OSError) -> AttemptFailed:
    return AttemptFailed(
        f"command {pool.argv[0]!r} cannot be started: {exc.strerror}", retryable=False
    )


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    chunks, size = [], 0
    while chunk := await stream.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise too_much_output()
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_tail(stream: asyncio.StreamReader) -> bytes:
    tail = b""
    while chunk := await stream.read(READ_CHUNK_BYTES):
        tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
    return tail


async def _feed(stdin: asyncio.StreamWriter, prompt: bytes) -> None:
    # A command that exits without reading its input is not a failure of the attempt.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(prompt)
        await stdin.drain()
    stdin.close()


class CommandBackend:
    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool

    async def run(self, job: Job) -> Outcome:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.pool.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=command_env(job, self.pool),
                **spawn_options(),
            )
        except OSError as exc:
            raise cannot_start(self.pool, exc) from None
        assert process.stdin and process.stdout and process.stderr
        try:
            _, stdout, stderr = await asyncio.gather(
                _feed(process.stdin, job.prompt.encode()),
                _read_capped(process.stdout),
                _read_tail(process.stderr),
            )
            await process.wait()
        except BaseException:
            kill_group(process.pid)  # timeout, cancel or runaway output: the whole group goes
            await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            raise exit_failure(process.returncode or 0, stderr)
        return Outcome(stdout.decode("utf-8", "replace"))

    async def health(self) -> bool:
        return os.access(self.pool.argv[0], os.X_OK) or "/" not in self.pool.argv[0]

    def reconfigure(self, pool: PoolConfig) -> None:
        self.pool = pool

    async def aclose(self) -> None:
        return None
