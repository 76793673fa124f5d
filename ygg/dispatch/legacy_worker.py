"""A legacy pool's worker thread: claim one task, run it to the end, record it, repeat."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from ygg import logs
from ygg.backends.base import AttemptFailed, Job
from ygg.backends.blocking import BlockingBackend, Interrupted
from ygg.config import PoolConfig
from ygg.dispatch.legacy_web import announce
from ygg.dispatch.outcome import log_recorded, record
from ygg.store.model import Claim, Outcome, now_us
from ygg.store.writer import StoreAbandoned

if TYPE_CHECKING:
    from ygg.dispatch.legacy import LegacyDispatcher
    from ygg.store.base import Store

log = structlog.get_logger("ygg.dispatch.legacy")


@dataclass
class Running:
    claim: Claim
    stop_reason: str | None = None
    started: float = field(default_factory=time.monotonic)


class Worker:
    """One pool's thread: claim one task, run it to the end, record it, repeat."""

    def __init__(self, pool: PoolConfig, legacy: LegacyDispatcher) -> None:
        self.pool = pool
        self.legacy = legacy
        self.backend = BlockingBackend(pool)
        self.running: Running | None = None
        # The task whose row this worker holds until its outcome is written: longer than
        # `running` (a write may wait out a full disk), and what the lease keeper renews.
        self.holding: int | None = None
        self.closing = False  # removed by a reload: finish the attempt, claim nothing more
        self.crashed: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name=f"pool-{pool.name}", daemon=True)

    def _loop(self) -> None:
        try:
            self._claim_and_run()
        except StoreAbandoned:
            pass  # a forced stop while the store was unavailable: the leases recover the tasks
        except BaseException as exc:  # the supervisor sees the dead thread and restarts it
            self.crashed = exc
            log.exception("pool_thread_crashed", pool=self.pool.name)

    def _claim_and_run(self) -> None:
        legacy = self.legacy
        store = legacy.open()
        try:
            while not (legacy.stopping.is_set() or self.closing):
                looked = legacy.wake.mark()
                claims = legacy.patiently(
                    lambda: store.claim(
                        self.pool.name,
                        self.pool.kinds,
                        1,
                        slots=self.pool.slots,
                        owner=legacy.owner,
                        lease_us=legacy.lease_us(),
                        now_us=now_us(),
                    )
                )
                if not claims:
                    legacy.wake.wait(legacy.config.daemon.poll_s, since=looked)
                    continue
                claim = claims[0]
                bound = logs.bind_attempt(claim.task_id, self.pool.name, claim.attempt)
                self.holding = claim.task_id
                try:
                    self._attempt(store, claim)
                finally:
                    self.holding = None
                    logs.unbind_attempt(bound)
        finally:
            self.backend.close()
            store.close()
            if self.closing:
                log.info("pool_retired", pool=self.pool.name)

    def _attempt(self, store: Store, claim: Claim) -> None:
        self.backend.reset()  # before `running` is set: a stop from then on is not lost
        self.running = Running(claim)
        announce(self, claim.task_id, "running", attempt=claim.attempt, kind=claim.kind)
        log.debug("task_started", kind=claim.kind, priority=claim.priority)
        timeout_s = claim.timeout_s or self.pool.retry.timeout_s
        job = Job.of(claim, self.legacy.config.daemon.db, self.legacy.owner, timeout_s)
        outcome: Outcome | None = None
        failure: AttemptFailed | None = None
        started = time.monotonic()
        try:
            outcome = self.backend.run(job, timeout_s)
        except AttemptFailed as exc:
            failure = exc
        except Interrupted:
            pass
        except Exception as exc:  # a backend bug fails the attempt, not the daemon
            log.exception("backend_crashed")
            failure = AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=True)
        running, self.running = self.running, None
        now = now_us()
        if running.stop_reason is not None:
            stopped = "cancelled" if running.stop_reason == "cancelled" else None
            announce(self, claim.task_id, stopped)
        if running.stop_reason == "shutdown":
            block = self.legacy.config.daemon.on_shutdown == "block"
            self.legacy.patiently(
                lambda: store.release(claim.task_id, claim.token, block=block, now_us=now)
            )
            log.info("task_interrupted", on_shutdown=self.legacy.config.daemon.on_shutdown)
            return
        if running.stop_reason is not None:  # cancelled, or the lease is gone: not ours to write
            log.info("task_cancelled" if running.stop_reason == "cancelled" else "lease_lost")
            return
        recorded = self.legacy.patiently(
            lambda: record(store, claim, self.pool, outcome, failure, now)
        )
        log_recorded(recorded, failure, now, time.monotonic() - started)
        if recorded.status == "done" and outcome is not None:
            self.legacy.metrics.usage_observed(self.pool.name, outcome)
        announce(self, claim.task_id, recorded.status)
        if recorded.promoted:
            self.legacy.wake.set()

    def interrupt(self, task_id: int | None, reason: str) -> None:
        running = self.running
        if running is not None and (task_id is None or running.claim.task_id == task_id):
            running.stop_reason = reason
            self.backend.interrupt()


class Pulse:
    """A wake-up shared by the worker threads: set() wakes everyone waiting now."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def set(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def mark(self) -> int:
        """Take this before looking for work, and pass it to wait(): a set() in between (a
        nudge, or the stop) is then not lost while the caller was busy looking."""
        with self._cond:
            return self._generation

    def wait(self, timeout_s: float, since: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._generation != since, timeout_s)
