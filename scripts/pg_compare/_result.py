"""Shared by the competitors' benches: the drain clock and the one JSON line run.py reads.

Runs inside the comparison venv, beside the competitors; imports nothing from ygg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, field

import psycopg
from _cpu import cpu_of_s, process_cpu_s, server_cpu_s

POLL_S = 0.05  # how often the watcher asks the database how many jobs are left


@dataclass
class Drain:
    """A drain of `jobs` no-op jobs: from worker start until the database holds none unfinished.

    The end is read from the database (a second connection polling a count), not from the
    worker, so that a job counts only once its completion is committed, whatever each system
    buffers or does at shutdown.
    """

    system: str
    setting: str
    jobs: int
    done: int = 0  # executions seen by the no-op job itself
    seconds: float = 0.0  # worker start → no job left unfinished (or the timeout)
    last_done_s: float = 0.0  # worker start → the last execution ended
    timed_out: bool = False
    left: int = -1  # jobs the database still held as unfinished at the end
    cpu_s: float = 0.0  # this process's CPU over the drain (the worker, and the watcher's polls)
    server_cpu_s: float = 0.0  # the database server's CPU over the drain (0: no --server-pid)
    server_pid: int = 0  # the postmaster's
    started: float = field(default_factory=time.monotonic)
    _cpu_at_start: tuple[float, float] = (0.0, 0.0)

    def count(self) -> None:
        self.done += 1
        self.last_done_s = time.monotonic() - self.started

    def restart_clock(self) -> None:
        self.started = time.monotonic()
        self._cpu_at_start = self._cpu_now()

    def _cpu_now(self) -> tuple[float, float]:
        return process_cpu_s(), server_cpu_s(self.server_pid) if self.server_pid else 0.0

    async def watch(self, url: str, unfinished_sql: str, timeout_s: float) -> None:
        """Polls `unfinished_sql` (one count) until it reads 0 or timeout_s has passed. The
        server's CPU is read then, less what the polls cost it (their backend's own CPU)."""
        deadline = self.started + timeout_s
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while True:
                row = await (await conn.execute(unfinished_sql)).fetchone()
                self.left = int(row[0]) if row else -1
                now = time.monotonic()
                if self.left == 0 or now >= deadline:
                    self.timed_out = self.left != 0
                    self.seconds = now - self.started
                    self._read_cpu(
                        polls_s=cpu_of_s(conn.info.backend_pid) if self.server_pid else 0
                    )
                    return
                await asyncio.sleep(POLL_S)

    def _read_cpu(self, polls_s: float) -> None:
        own, server = self._cpu_now()
        self.cpu_s = own - self._cpu_at_start[0]
        self.server_cpu_s = server - self._cpu_at_start[1] - polls_s

    @staticmethod
    async def analyze(url: str, table: str, enabled: bool) -> None:
        """ANALYZE the freshly filled table, as autovacuum would have by the time a real queue
        is this deep: without statistics the planner can pick a plan that reads the whole
        table per claim (procrastinate drained 5,000 jobs at a third of its rate here)."""
        if not enabled:
            return
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f"ANALYZE {table}")

    def emit(self) -> None:
        record = asdict(self)
        for internal in ("started", "server_pid", "_cpu_at_start"):
            del record[internal]
        print(json.dumps(record), flush=True)


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="libpq URL of an empty database")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--timeout-s", type=float, default=120.0, help="bound on the drain")
    parser.add_argument("--concurrency", type=int, default=10, help="procrastinate's worker")
    parser.add_argument("--limit", type=int, default=0, help="pgqueuer's concurrency_limit")
    parser.add_argument("--driver", choices=["asyncpg", "psycopg"], default="asyncpg")
    parser.add_argument("--no-analyze", dest="analyze", action="store_false")
    parser.add_argument("--server-pid", type=int, default=0, help="the postmaster's, for CPU")
    return parser.parse_args()
