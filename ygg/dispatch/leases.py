"""The lease keeper (renews what we run, notices what we lost) and the reaper (recovers what
dead dispatchers held)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

import psutil
import structlog

from ygg.backends.command import kill_orphans
from ygg.store import SQLiteStore
from ygg.store.model import US, Daemon, Reaped

if TYPE_CHECKING:
    from ygg.dispatch.dispatcher import Dispatcher

log = structlog.get_logger("ygg.dispatch")


async def keep_leases(d: Dispatcher) -> None:
    """Renews every lease we hold a few times per lease period, in one statement."""
    lease_us = int(d.config.daemon.lease_s * US)
    while True:
        await asyncio.sleep(d.config.daemon.lease_s / 3)
        asked_at = time.monotonic()
        now, owner = d.now_us(), d.owner
        held = await d.store.call(SQLiteStore.renew, owner, now + lease_us, now)
        d.observer.metrics.leases_renewed(len(held))
        d.observer.beat("lease_keeper")
        for runner in d.all_runners():
            for task_id, attempt in list(runner.attempts.items()):
                # Claimed after we asked, or already recording: the answer says nothing of it.
                if attempt.started < asked_at and not attempt.recording and task_id not in held:
                    runner.stop_attempt(task_id, "lease_lost")


def is_alive(daemon: Daemon, hostname: str) -> bool:
    """Whether a daemon on this machine still runs (same pid, same process start time)."""
    if daemon.hostname != hostname:
        return False  # another machine: only its lease expiry can tell
    try:
        started_us = int(psutil.Process(daemon.pid).create_time() * US)
    except psutil.Error:
        return False
    return abs(started_us - daemon.pid_started_us) < US // 10


def log_reaped(reaped: list[Reaped], queue: str) -> None:
    """Logs each task taken back, and kills what its interrupted attempt left running here."""
    for task in reaped:
        log.warning("task_reaped", task_id=task.task_id, status=task.status)
    killed = kill_orphans(queue, [(t.task_id, t.attempt) for t in reaped])
    if killed:
        log.warning("orphans_killed", pids=killed)


async def reap_expired(d: Dispatcher) -> None:
    """Returns to the queue the tasks whose owner died and whose lease ran out."""
    hostname = socket.gethostname()
    period_s = max(min(d.config.daemon.lease_s / 2, d.config.daemon.poll_s), 0.05)
    while True:
        daemons = await d.refresh_peers()
        alive = {x.id for x in daemons if x.id == d.owner or is_alive(x, hostname)}
        now = d.now_us()
        changed = await d.store.call(SQLiteStore.requeue_expired, now, alive)
        if changed:
            await asyncio.to_thread(log_reaped, changed, d.config.daemon.db)
        d.observer.metrics.tasks_reaped(len(changed))
        d.observer.beat("reaper")
        dead = [x.id for x in daemons if x.hostname == hostname and x.id not in alive]
        if dead:
            await d.store.call(SQLiteStore.forget_daemons, dead)
        if changed:
            d.wake_all()
        await asyncio.sleep(period_s)
