"""`ygg loop --legacy`: the old dispatcher's model, kept for rollback.

One worker thread per pool, at most one task per pool at a time, blocking I/O, no asyncio.
It shares everything that decides correctness with the async dispatcher — the store's atomic
claim (which also counts other dispatchers' running tasks against the pool's slots), leases,
fencing tokens and outcome records — so a legacy and an async daemon can share one queue.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import structlog

from ygg import logs
from ygg.backends.base import AttemptFailed, Job
from ygg.backends.blocking import BlockingBackend, Interrupted
from ygg.config import Config, PoolConfig
from ygg.dispatch import nudge
from ygg.dispatch.leases import reap
from ygg.dispatch.outcome import log_recorded, record
from ygg.dispatch.reload import bound_at_start
from ygg.errors import YggError
from ygg.store import SQLiteStore, open_store
from ygg.store.model import US, Claim, Outcome, now_us

log = structlog.get_logger("ygg.legacy")
STOP_GRACE_S = 5.0


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
        self.closing = False  # removed by a reload: finish the attempt, claim nothing more
        self.thread = threading.Thread(target=self._loop, name=f"pool-{pool.name}", daemon=True)

    def _loop(self) -> None:
        legacy = self.legacy
        store = legacy.open()
        try:
            while not (legacy.stopping.is_set() or self.closing):
                claims = store.claim(
                    self.pool.name,
                    self.pool.kinds,
                    1,
                    slots=self.pool.slots,
                    owner=legacy.owner,
                    lease_us=legacy.lease_us(),
                    now_us=now_us(),
                )
                if not claims:
                    legacy.wake.wait(legacy.config.daemon.poll_s)
                    continue
                claim = claims[0]
                bound = logs.bind_attempt(claim.task_id, self.pool.name, claim.attempt)
                try:
                    self._attempt(store, claim)
                finally:
                    logs.unbind_attempt(bound)
        finally:
            self.backend.close()
            store.close()
            if self.closing:
                log.info("pool_retired", pool=self.pool.name)

    def _attempt(self, store: SQLiteStore, claim: Claim) -> None:
        self.running = Running(claim)
        log.debug("task_started", kind=claim.kind, priority=claim.priority)
        job = Job.of(claim, self.legacy.config.daemon.db, self.legacy.owner)
        outcome: Outcome | None = None
        failure: AttemptFailed | None = None
        started = time.monotonic()
        try:
            outcome = self.backend.run(job, claim.timeout_s or self.pool.retry.timeout_s)
        except AttemptFailed as exc:
            failure = exc
        except Interrupted:
            pass
        except Exception as exc:  # a backend bug fails the attempt, not the daemon
            log.exception("backend_crashed")
            failure = AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=True)
        running, self.running = self.running, None
        now = now_us()
        if running.stop_reason == "shutdown":
            block = self.legacy.config.daemon.on_shutdown == "block"
            store.release(claim.task_id, claim.token, block=block, now_us=now)
            log.info("task_interrupted", on_shutdown=self.legacy.config.daemon.on_shutdown)
            return
        if running.stop_reason is not None:  # cancelled, or the lease is gone: not ours to write
            log.info("task_cancelled" if running.stop_reason == "cancelled" else "lease_lost")
            return
        recorded = record(store, claim, self.pool, outcome, failure, now)
        log_recorded(recorded, failure, now, time.monotonic() - started)
        if recorded.promoted:
            self.legacy.wake.set()

    def interrupt(self, task_id: int | None, reason: str) -> None:
        running = self.running
        if running is not None and (task_id is None or running.claim.task_id == task_id):
            running.stop_reason = reason
            self.backend.stop.set()


class LegacyDispatcher:
    def __init__(
        self,
        config: Config,
        *,
        until_idle: bool = False,
        open_store_fn: Callable[[], SQLiteStore] | None = None,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.reload_config = reload_config
        self.reload_requested = threading.Event()
        self.until_idle = until_idle
        self.open = open_store_fn or (
            lambda: open_store(
                config.daemon.db, synchronous=config.daemon.synchronous, busy_timeout_s=60.0
            )
        )
        self.stopping = threading.Event()
        self.forced = threading.Event()  # a second signal: cut the drain short
        self.wake = _Pulse()
        self.owner = 0
        self.workers = [Worker(pool, self) for pool in config.pools.values()]
        self.retiring: list[Worker] = []  # removed by a reload, finishing their attempt

    def lease_us(self) -> int:  # read each time: a reload may change lease_seconds
        return int(self.config.daemon.lease_s * US)

    def run(self) -> None:
        gc.collect()  # as the async mode does: no full collection scans what lives forever
        gc.freeze()
        store = self.open()
        listener = nudge.BlockingListener(self._on_nudge)
        me = psutil.Process()
        self.owner = store.register_daemon(
            socket.gethostname(),
            os.getpid(),
            int(me.create_time() * US),
            listener.address,
            "legacy",
            now_us(),
        )
        log.info(
            "dispatcher_started",
            owner=self.owner,
            mode="legacy",
            pools={w.pool.name: 1 for w in self.workers},
        )
        for worker in self.workers:
            worker.thread.start()
        try:
            self._supervise(store)
        finally:
            self._stop(store)
            listener.close()

    def _supervise(self, store: SQLiteStore) -> None:
        """Renews leases, reaps dead owners' tasks, and notices idleness, until told to stop."""
        next_status = time.monotonic() + self.config.daemon.status_log_s
        while not self.stopping.wait(
            min(self.config.daemon.lease_s / 3, self.config.daemon.poll_s)
        ):
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload(store)
            if time.monotonic() >= next_status:
                next_status += self.config.daemon.status_log_s
                self._log_status(store)
            asked_at, now = time.monotonic(), now_us()
            held = store.renew(self.owner, now + self.lease_us(), now)
            for worker in self.all_workers():
                running = worker.running
                # Claimed after we asked: the answer says nothing of it (as in keep_leases).
                if (
                    running is not None
                    and running.started < asked_at
                    and running.claim.task_id not in held
                ):
                    worker.interrupt(running.claim.task_id, "lease_lost")
            if reap(store, store.daemons(), self.owner, now, self.config.daemon.db):
                self.wake.set()
            if (
                self.until_idle
                and all(w.running is None for w in self.workers)
                and not store.has_pending(self.config.kinds_served())
            ):
                log.info("queue_idle")
                return

    def all_workers(self) -> list[Worker]:
        return [*self.workers, *self.retiring]

    def _reload(self, store: SQLiteStore) -> None:
        """As the async mode's reload: unchanged hosts keep their worker, the rest are replaced
        after their attempt; an invalid configuration changes nothing and is reported."""
        assert self.reload_config is not None
        log.info("config_reload_started")
        try:
            config = self.reload_config()
            old = {w.pool.name: w for w in self.workers}
            keep = {n for n, p in config.pools.items() if n in old and old[n].pool.same_host_as(p)}
            added = [Worker(p, self) for n, p in config.pools.items() if n not in keep]
        except YggError as exc:
            log.error("config_reload_failed", error=exc.message)
            store.set_config_error(self.owner, exc.message)
            return
        for name, worker in old.items():
            if name in keep:
                worker.pool = config.pools[name]
            else:
                worker.closing = True
                self.retiring.append(worker)
        self.retiring = [w for w in self.retiring if w.thread.is_alive()]
        self.workers = [old[n] for n in keep] + added
        for worker in added:
            worker.thread.start()
        self.config = bound_at_start(self.config, config)
        store.set_config_error(self.owner, None)
        log.info("config_reloaded", pools={w.pool.name: 1 for w in self.workers})
        self.wake.set()

    def _log_status(self, store: SQLiteStore) -> None:
        load = store.pool_load({w.pool.name: w.pool.kinds for w in self.workers})
        log.info(
            "pool_status",
            pools={
                w.pool.name: {
                    "running": int(w.running is not None),
                    "slots": 1,
                    "queued": load[w.pool.name][1],
                    "running_all_daemons": load[w.pool.name][0],
                }
                for w in self.workers
            },
        )

    def _on_nudge(self, message: bytes) -> None:
        if message.startswith(nudge.CANCEL):
            task_id = int(message.split()[1]) if message.split()[1:] else None
            for worker in self.all_workers():
                if task_id is not None:
                    worker.interrupt(task_id, "cancelled")
        elif message == nudge.RELOAD:
            self.reload_requested.set()
        else:
            self.wake.set()

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _stop(self, store: SQLiteStore) -> None:
        self.request_stop()
        log.info("dispatcher_stopping", drain_s=self.config.daemon.drain_s)
        deadline = time.monotonic() + self.config.daemon.drain_s
        for worker in self.all_workers():
            while worker.thread.is_alive() and time.monotonic() < deadline:
                if self.forced.is_set():
                    break
                worker.thread.join(0.05)
        for worker in self.all_workers():
            worker.interrupt(None, "shutdown")
            # A blocking read may not notice at once; past this, the lease recovers the task.
            worker.thread.join(STOP_GRACE_S)
        store.unregister_daemon(self.owner)
        store.close()
        log.info("dispatcher_stopped")


class _Pulse:
    """A wake-up shared by the worker threads: set() wakes everyone waiting now."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def set(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, timeout_s: float) -> None:
        with self._cond:
            seen = self._generation
            self._cond.wait_for(lambda: self._generation != seen, timeout_s)


def run_legacy(
    config: Config,
    *,
    until_idle: bool = False,
    reload_config: Callable[[], Config] | None = None,
) -> None:
    legacy = LegacyDispatcher(config, until_idle=until_idle, reload_config=reload_config)
    seen = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal seen
        seen += 1
        if seen > 1:
            legacy.forced.set()
        legacy.request_stop()

    def on_hangup(_signum: int, _frame: object) -> None:
        legacy.reload_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    try:
        legacy.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
