"""The command backend: argv without a shell, prompt on stdin, result from stdout.

The process leads its own process group, so a timeout or a cancel kills everything it
started, not just the first process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal

from ygg.backends.base import AttemptFailed, Job
from ygg.config import PoolConfig
from ygg.store.model import Outcome

STDERR_TAIL_BYTES = 2000


def command_env(job: Job, pool: PoolConfig) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "YGG_TASK_ID": str(job.task_id),
            "YGG_ATTEMPT": str(job.attempt),
            "YGG_POOL": pool.name,
            "YGG_KIND": job.kind,
            "YGG_PRIORITY": str(job.priority),
        }
    )
    for key, value in job.params.items():
        env["YGG_PARAM_" + re.sub(r"[^A-Za-z0-9_]", "_", key).upper()] = str(value)
    return env


def exit_failure(returncode: int, stderr: bytes) -> AttemptFailed:
    tail = stderr[-STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()
    how = (
        f"killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
    )
    return AttemptFailed(f"command {how}" + (f": {tail}" if tail else ""), retryable=True)


def cannot_start(pool: PoolConfig, exc: OSError) -> AttemptFailed:
    return AttemptFailed(
        f"command {pool.argv[0]!r} cannot be started: {exc.strerror}", retryable=False
    )


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


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
                start_new_session=True,
            )
        except OSError as exc:
            raise cannot_start(self.pool, exc) from None
        try:
            stdout, stderr = await process.communicate(job.prompt.encode())
        except BaseException:
            kill_group(process.pid)  # timeout or cancel: the whole group goes
            await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            raise exit_failure(process.returncode or 0, stderr)
        return Outcome(stdout.decode("utf-8", "replace"))

    async def health(self) -> bool:
        return os.access(self.pool.argv[0], os.X_OK) or "/" not in self.pool.argv[0]

    async def aclose(self) -> None:
        return None
