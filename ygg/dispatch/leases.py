"""The lease keeper (renews what we run, notices what we lost) and the reaper (recovers what
dead dispatchers held)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

import structlog

from ygg.backends.command import kill_orphans
from ygg.dispatch.liveness import boot_id, is_alive
from ygg.store import scheme_of
from ygg.store.base import Store
from ygg.store.model import US, Daemon, Reaped, Renewal
from ygg.store.outage import JITTER, MAX_RETRY_S, Outage

if TYPE_CHECKING:
    from ygg.dispatch.state import Shared

log = structlog.get_logger("ygg.dispatch")
FENCE_FRACTION = 0.8  # of a lease: the margin covers the claim's own latency and clock rates


async def keep_leases(d: Shared) -> None:
    """Renews the leases of the attempts we run, a few times per lease period, in one
    statement; takes back any row we hold without an attempt (see Store.renew)."""
    renewed: dict[int, float] = {}  # task -> when the last renewal that held it was asked
    fence = scheme_of(d.config.daemon.db) != "sqlite"  # see renewed_or_fenced
    while True:
        await asyncio.sleep(d.config.daemon.lease_s / 3)
        asked_at = time.monotonic()
        now, owner = d.now_us(), d.owner
        lease_us = int(d.config.daemon.lease_s * US)  # read each round: a reload may change it
        live = [task_id for runner in d.all_runners() for task_id in runner.attempts]
        pending = d.store.submit(Store.renew, owner, live, now + lease_us, now)
        renewal = await renewed_or_fenced(d, pending, renewed) if fence else await pending
        renewed = {task_id: at for task_id, at in renewed.items() if task_id in live}
        renewed.update(dict.fromkeys(renewal.held, asked_at))
        d.observer.metrics.leases_renewed(len(renewal.held))
        d.observer.beat("lease_keeper")
        log_orphans(renewal.orphans)
        if renewal.orphans:
            d.wake_all()
        for runner in d.all_runners():
            for task_id, attempt in list(runner.attempts.items()):
                # Claimed after we asked, or already recording: the answer says nothing of it.
                held = task_id in renewal.held
                if attempt.started < asked_at and not attempt.recording and not held:
                    runner.stop_attempt(task_id, "lease_lost")


async def renewed_or_fenced(
    d: Shared, pending: asyncio.Future[Renewal], renewed: dict[int, float]
) -> Renewal:
    """Waits for a renewal. Meanwhile, while the store is out of reach, stops each attempt
    whose lease may have run out in the database (FENCE_FRACTION of a lease since the last
    renewal that held it was asked): after an outage longer than a lease, a daemon on another
    machine — which judges ours by the lease alone — may take the task back, and its run must
    not start beside ours. The task runs again (at-least-once), never twice at once. On SQLite
    every daemon is on this machine and judges us by our pid, so nothing is fenced there."""
    lease_s = d.config.daemon.lease_s
    while True:
        done, _ = await asyncio.wait({pending}, timeout=lease_s / 6)
        if done:
            return pending.result()
        if d.store.outage.reason is None:
            continue
        now = time.monotonic()
        for runner in d.all_runners():
            for task_id, attempt in list(runner.attempts.items()):
                unrenewed_s = now - renewed.get(task_id, attempt.started)
                if unrenewed_s > FENCE_FRACTION * lease_s and runner.stop_attempt(
                    task_id, "lease_lost"
                ):
                    log.warning("lease_fenced", task_id=task_id, unrenewed_s=round(unrenewed_s, 3))


def log_orphans(orphans: list[Reaped]) -> None:
    for task in orphans:
        log.error("orphan_released", task_id=task.task_id, status=task.status)


def judge_daemons(daemons: list[Daemon], me: int, queue: str) -> tuple[set[int], list[int]]:
    """Which daemons on the queue are alive, and which on this machine are dead. What a dead
    one's commands left running is killed first, so a re-run never overlaps it. This scans
    processes: it runs outside any store transaction."""
    hostname, this_boot = socket.gethostname(), boot_id()
    alive = {x.id for x in daemons if x.id == me or is_alive(x, hostname, this_boot)}
    dead = [x.id for x in daemons if x.hostname == hostname and x.id not in alive]
    if dead:
        killed = kill_orphans(queue, dead)
        if killed:
            log.warning("orphans_killed", pids=killed, daemons=dead)
    return alive, dead


def spare_after_outage(
    alive: set[int], dead: list[int], daemons: list[Daemon], outage: Outage, lease_s: float
) -> set[int]:
    """`alive`, or — just after the store came back from an outage — every registered daemon
    not known to be dead: their leases ran out while nobody could renew them, and their
    renewals may still be on the way (each retries with backoff, up to MAX_RETRY_S apart).
    Taking their tasks back now could start a second run beside one still going."""
    if outage.settled(lease_s + MAX_RETRY_S * (1 + JITTER)):
        return alive
    return alive | {x.id for x in daemons if x.id not in dead}


def take_back(store: Store, alive: set[int], dead: list[int], now_us: int) -> list[Reaped]:
    """The store's half of a reaper round (one operation): expired leases of owners not known
    to be alive, and every task of the dead, go back to the queue; the dead are forgotten."""
    reaped = store.reap(now_us, alive, dead)
    for task in reaped:
        log.warning("task_reaped", task_id=task.task_id, status=task.status)
    return reaped


async def reap_expired(d: Shared) -> None:
    """Returns to the queue the tasks whose owner died."""
    period_s = max(min(d.config.daemon.lease_s / 2, d.config.daemon.poll_s), 0.05)
    while True:
        daemons = await d.refresh_peers()
        alive, dead = await asyncio.to_thread(judge_daemons, daemons, d.owner, d.config.daemon.db)
        alive = spare_after_outage(alive, dead, daemons, d.store.outage, d.config.daemon.lease_s)
        changed = await d.store.call(take_back, alive, dead, d.now_us())
        d.observer.metrics.tasks_reaped(len(changed))
        d.observer.beat("reaper")
        if changed:
            d.wake_all()
        await asyncio.sleep(period_s)
