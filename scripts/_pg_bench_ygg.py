"""ygg's side of scripts/pg_bench.py: drain, submit→start and claim depth on PostgreSQL.

Every queue is filled in bulk with SQL (set-up, not measured) and ANALYZEd afterwards, as the
competitors' tables are in scripts/pg_compare; every measurement reads its clock from the
queue itself (started_us and finished_us, on the database server's clock), so a task counts
once its outcome is committed.
"""

from __future__ import annotations

import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ygg.store import NewTask, Outcome, open_store
from ygg.store.model import now_us

sys.path.insert(0, str(Path(__file__).resolve().parent / "pg_compare"))
from _cpu import cpu_of_s, server_cpu_s  # shared with the competitors' benches

KINDS = [f"kind-{i}" for i in range(20)]  # the claim-depth queue: 20 kinds, 5 priorities
DRAIN_KIND = "sim"
LATER_US = 3600 * 10**6  # drain tasks wait this long until every daemon is listening
PROCESS_TIMEOUT_S = 600.0
_FILL = """
INSERT INTO ygg.tasks (title, kind, priority, status, params, max_attempts, created_us,
    run_after_us)
SELECT 't' || g, (%(kinds)s::text[])[1 + g %% cardinality(%(kinds)s::text[])],
    (g / 20) %% %(priorities)s, 'queued', '{"seconds": "0"}', 3, %(now)s, %(after)s::bigint
FROM generate_series(0, %(n)s - 1) AS g
"""


@dataclass(frozen=True)
class DrainResult:
    daemons: int
    done: int
    tasks: int
    span_s: float  # first claim to last completion, as the queue recorded them
    daemon_cpu_s: float = 0.0  # the daemons' CPU from the release of the tasks to their exit
    server_cpu_s: float = 0.0  # the database server's, over the same time

    @property
    def rate(self) -> float:
        return self.done / self.span_s if self.span_s > 0 else 0.0

    def cpu_per_task_us(self) -> tuple[float, float]:
        """The daemons' and the server's CPU per task done, in µs."""
        done = max(self.done, 1)
        return self.daemon_cpu_s / done * 1e6, self.server_cpu_s / done * 1e6


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def write_config(directory: Path, db: str, slots: int, poll_s: float = 2.0) -> Path:
    text = (
        f'[daemon]\ndb = "{db}"\nsynchronous = "normal"\nlog_format = "json"\n'
        f'log_level = "warning"\nlease_seconds = 30\npoll_seconds = {poll_s}\n\n'
        f'[pools.sim]\nbackend = "sim"\nseconds = 0\nslots = {slots}\nkinds = ["{DRAIN_KIND}"]\n'
    )
    path = directory / "ygg.toml"
    path.write_text(text)
    return path


def fill(
    url: str,
    kinds: list[str],
    n: int,
    *,
    priorities: int = 1,
    after_us: int | None = None,
    config: Path | None = None,
) -> None:
    """Creates the schema, then `n` queued sim tasks of 0 s in one statement, and ANALYZE.
    With `config`, the schema is made by `ygg migrate` of the ygg the daemons will run (see
    _ygg), so that a daemon of another version finds its own schema; else by this process."""
    if config is None:
        open_store(url).close()
    else:
        done = subprocess.run(
            _ygg(config, "migrate"), cwd=config.parent, env=_env(), capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"ygg migrate failed: {done.stderr.strip()}")
    with psycopg.connect(url, autocommit=True) as conn:
        args = {"kinds": kinds, "n": n, "priorities": priorities, "now": now_us()}
        conn.execute(_FILL, {**args, "after": after_us})
        conn.execute("ANALYZE ygg.tasks")


def _ygg(config: Path, *args: str) -> list[str]:
    """A ygg command line. Run from the config's directory: `python -m` puts the working
    directory first on sys.path, which would shadow the tree PYTHONPATH names (pg_drain_ab)."""
    return [sys.executable, "-m", "ygg", "--config", str(config), *args]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}


def _daemon(config: Path, *, until_idle: bool) -> subprocess.Popen[bytes]:
    command = _ygg(config, "loop", *(["--until-idle"] if until_idle else []))
    return subprocess.Popen(
        command, cwd=config.parent, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.01)


def _listening(conn: psycopg.Connection[Any], daemons: int) -> bool:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM ygg.daemons), (SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = 'ygg-listen' AND datname = current_database())"
    ).fetchone()
    return row is not None and row[0] >= daemons and row[1] >= daemons


def drain_pg(
    url: str, daemons: int, tasks: int, slots: int, postmaster_pid: int | None = None
) -> DrainResult:
    """`daemons` processes of `ygg loop --until-idle` on one pool of `slots` slots. The tasks
    wait (run_after) until every daemon is registered and listening, then are released at once
    with a NOTIFY, so that no daemon starts ahead of the others. The rate is taken from the
    first start to the last finish the queue recorded. With `postmaster_pid`, the server's CPU
    over the drain is read too (the daemons' always is)."""
    directory = Path(tempfile.mkdtemp(prefix="ygg-pgbench-"))
    # A long safety poll: the daemons look at the queue when told (NOTIFY), not before.
    config = write_config(directory, url, slots, poll_s=60.0)
    fill(url, [DRAIN_KIND], tasks, after_us=now_us() + LATER_US, config=config)
    procs = [_daemon(config, until_idle=True) for _ in range(daemons)]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            wait_for(lambda: _listening(conn, daemons), 60, "every daemon listening")
            # Released, then vacuumed (the update left a dead version of every row, which a
            # freshly filled queue, as the competitors' are, does not have), then announced.
            conn.execute("UPDATE ygg.tasks SET run_after_us = NULL WHERE status = 'queued'")
            conn.execute("VACUUM ANALYZE ygg.tasks")
            cpu = _CpuClock(procs, postmaster_pid)
            conn.execute("NOTIFY ygg, 'wake'")
            for proc in procs:
                _finish(proc)
            daemon_cpu_s, server_cpu_s = cpu.read()
            row = conn.execute(
                "SELECT count(*), min(started_us), max(finished_us) FROM ygg.tasks "
                "WHERE status = 'done'"
            ).fetchone()
    finally:
        for proc in procs:
            _stop(proc)
    assert row is not None
    done, first, last = row
    span_s = (last - first) / 1e6 if done else 0.0
    return DrainResult(daemons, done, tasks, span_s, daemon_cpu_s, server_cpu_s)


class _CpuClock:
    """CPU of the daemons and of the server from now until the daemons have exited (read()
    after every one was waited for): their CPU so far is read now, their total once reaped."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], postmaster_pid: int | None) -> None:
        self.postmaster_pid = postmaster_pid
        self.children_at_start = _children_cpu_s()
        self.daemons_at_start = sum(cpu_of_s(p.pid) for p in procs)
        self.server_at_start = self._server()

    def _server(self) -> float:
        return server_cpu_s(self.postmaster_pid) if self.postmaster_pid else 0.0

    def read(self) -> tuple[float, float]:
        daemons = _children_cpu_s() - self.children_at_start - self.daemons_at_start
        return daemons, self._server() - self.server_at_start


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def drain_sqlite(tasks: int, slots: int) -> DrainResult:
    """The same drain, one daemon, on a SQLite file (the reference on this machine)."""
    directory = Path(tempfile.mkdtemp(prefix="ygg-pgbench-"))
    config = write_config(directory, "queue.db", slots)
    db = str(directory / "queue.db")
    store = open_store(db, synchronous="normal")
    now = now_us()
    with store.write():
        for i in range(tasks):
            store.enqueue(NewTask(f"t{i}", DRAIN_KIND, params={"seconds": "0"}), now)
    store.close()
    proc = _daemon(config, until_idle=True)
    try:
        _finish(proc)
    finally:
        _stop(proc)
    import sqlite3

    with sqlite3.connect(db) as conn:
        done, first, last = conn.execute(
            "SELECT count(*), min(started_us), max(finished_us) FROM tasks WHERE status = 'done'"
        ).fetchone()
    return DrainResult(1, done, tasks, (last - first) / 1e6 if done else 0.0)


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"ygg loop exited {proc.returncode}: {' | '.join(tail)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def submit_to_start_ms(url: str, tasks: int) -> list[float]:
    """An idle daemon (one pool, 2 slots) and this process submitting one task at a time
    straight through the store, so the only wake-up is the store's NOTIFY (no nudge datagram).
    Latency: from just before the enqueue to the attempt's start as the daemon recorded it."""
    directory = Path(tempfile.mkdtemp(prefix="ygg-pgbench-"))
    config = write_config(directory, url, 2)
    store = open_store(url)
    proc = _daemon(config, until_idle=False)
    samples: list[float] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            wait_for(lambda: _listening(conn, 1), 60, "the daemon listening")
        time.sleep(0.5)  # its first claim and poll are behind it
        for i in range(tasks):
            before = now_us()
            task_id = store.enqueue(NewTask(f"t{i}", DRAIN_KIND, params={"seconds": "0"}), before)
            time.sleep(0.02)  # not polling while the daemon claims: it has the cores
            wait_for(lambda: store.get(task_id).status == "done", 10, f"task {task_id} done")  # noqa: B023
            started = store.get(task_id).started_us
            assert started is not None
            samples.append((started - before) / 1000)
    finally:
        store.close()
        _stop(proc)
    return samples


@dataclass(frozen=True)
class DepthResult:
    depth: int
    claim_p50_ms: float
    claim_p99_ms: float
    round_trip_p50_ms: float


def claim_depth(url: str, depth: int, claims: int) -> DepthResult:
    """`depth` ready tasks over 20 kinds and 5 priorities; then claim one task for a pool
    serving 3 of the kinds and complete it, `claims` times, straight through the store."""
    fill(url, KINDS, depth, priorities=5)
    store = open_store(url)
    claim_ms: list[float] = []
    trip_ms: list[float] = []
    try:
        for _ in range(claims):
            started = time.perf_counter()
            [claim] = store.claim(
                "bench", KINDS[:3], 1, slots=4, owner=1, lease_us=30_000_000, now_us=now_us()
            )
            claimed = time.perf_counter()
            store.complete(claim.task_id, claim.token, Outcome("ok"), now_us())
            claim_ms.append((claimed - started) * 1000)
            trip_ms.append((time.perf_counter() - started) * 1000)
    finally:
        store.close()
    return DepthResult(
        depth, statistics.median(claim_ms), percentile(claim_ms, 0.99), statistics.median(trip_ms)
    )
