"""`ygg loop --legacy`: the old dispatcher's model, kept for rollback.

One worker thread per pool, at most one task per pool at a time, blocking I/O, no asyncio.
It shares everything that decides correctness with the async dispatcher — the store's atomic
claim (which also counts other dispatchers' running tasks against the pool's slots), leases,
fencing tokens and outcome records — so a legacy and an async daemon can share one queue.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import structlog

from ygg import nudge
from ygg.config import Config
from ygg.dispatch.host_watch import HostWatchThread
from ygg.dispatch.leases import judge_daemons, log_orphans, spare_after_outage, take_back
from ygg.dispatch.legacy_web import LegacyWeb
from ygg.dispatch.legacy_worker import Pulse, Worker
from ygg.dispatch.limits import LimitView, state_slots
from ygg.dispatch.liveness import own_start
from ygg.dispatch.nudge_listen import BlockingListener, LogLimiter, hint_receiver
from ygg.dispatch.reload import bound_at_start, plan
from ygg.errors import StoreBusy, StoreUnavailable, YggError
from ygg.ops.http_status import check_listen, status_token
from ygg.ops.metrics import Metrics
from ygg.ops.progress import Progress, stall_window_s
from ygg.ops.sdnotify import Notifier, WatchdogThread
from ygg.ops.web.events import EventHub
from ygg.store import listen_for_hints, open_store, queue_path
from ygg.store.model import US, now_us
from ygg.store.outage import Outage
from ygg.store.writer import STOPPED_UNRECORDED, StoreAbandoned

if TYPE_CHECKING:
    from ygg.store.base import Store


log = structlog.get_logger("ygg.dispatch.legacy")
STOP_GRACE_S = 5.0
BUSY_TIMEOUT_S = 5.0  # one wait for the write lock; a forced stop is noticed between waits
RESTARTS_PER_MINUTE = 5  # a pool thread that dies more often than this takes the daemon down
T = TypeVar("T")


class LegacyCrashed(YggError):
    """A pool thread of the legacy dispatcher kept dying."""


class LegacyDispatcher:
    def __init__(
        self,
        config: Config,
        *,
        until_idle: bool = False,
        open_store_fn: Callable[[], Store] | None = None,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.reload_config = reload_config
        self.reload_requested = threading.Event()
        self.until_idle = until_idle
        self.open = open_store_fn or (
            lambda: open_store(
                config.daemon.db,
                synchronous=config.daemon.synchronous,
                busy_timeout_s=BUSY_TIMEOUT_S,
            )
        )
        self.stopping = threading.Event()
        self.forced = threading.Event()  # a second signal: cut the drain short
        self.wake = Pulse()
        self.owner = 0
        self.workers = [Worker(pool, self) for pool in config.pools.values()]
        self.retiring: list[Worker] = []  # removed by a reload, finishing their attempt
        self._restarts: dict[str, list[float]] = {}  # pool -> when its thread was restarted
        self.abandoned = False  # a write was given up on: the stop is not a clean one
        self.rounds = 0  # supervisor rounds (each through the store): what feeds the watchdog
        self.outage = Outage()  # a database out of reach: waited for with backoff, logged
        self._nudge_log = LogLimiter()
        self.hosts = HostWatchThread(
            lambda: [w.pool for w in self.workers], lambda: self.config.daemon.telemetry_s
        )
        self.limit_view = LimitView()
        # The web side, as the async mode has it: checked before anything starts.
        self.events = EventHub()  # what /api/events streams; fed by the workers
        daemon = config.daemon
        self.progress = Progress(max_age_s=stall_window_s(daemon.lease_s, daemon.poll_s))
        self.metrics = Metrics(self.progress)  # /metrics; the workers feed its usage
        self.token = status_token()
        if daemon.status_listen:
            check_listen(daemon.status_listen, self.token)

    def patiently(self, op: Callable[[], T]) -> T:
        """Runs a store operation, waiting out a locked, full or unreachable store as the
        async mode does (never failing a task for it), with backoff; gives up only on a
        forced stop (StoreAbandoned)."""
        attempt = 0
        while True:
            try:
                result = op()
            except StoreUnavailable as exc:
                if self.forced.is_set():
                    log.warning("store_writes_abandoned", error=str(exc))
                    self.abandoned = True
                    raise StoreAbandoned(str(exc)) from None
                if isinstance(exc, StoreBusy):  # the busy timeout has already waited
                    log.warning("store_locked", error=str(exc))
                    continue
                attempt += 1
                self.forced.wait(self.outage.failed(exc, attempt))
            else:
                self.outage.recovered()
                return result

    def _open_waiting(self) -> Store | None:
        """Opens the store; a database server that is down as the daemon starts is waited
        for with backoff. None if the daemon is told to stop meanwhile."""
        attempt = 0
        while not self.stopping.is_set():
            try:
                store = self.open()
            except StoreBusy as exc:
                log.warning("store_locked", error=str(exc))
            except StoreUnavailable as exc:
                attempt += 1
                self.stopping.wait(self.outage.failed(exc, attempt))
            else:
                self.outage.recovered()
                return store
        return None

    def lease_us(self) -> int:  # read each time: a reload may change lease_seconds
        return int(self.config.daemon.lease_s * US)

    def run(self) -> None:
        gc.collect()  # as the async mode does: no full collection scans what lives forever
        gc.freeze()
        store = self._open_waiting()
        if store is None:
            log.info("dispatcher_stopped", reason="stopped before the store was reached")
            return
        listener = BlockingListener(self._on_nudge, queue_path(self.config.daemon.db))
        self._register(store, listener.address)
        log.info(
            "dispatcher_started",
            owner=self.owner,
            mode="legacy",
            pools={w.pool.name: 1 for w in self.workers},
        )
        # The store's hints from other machines (PostgreSQL's NOTIFY), handled as nudges.
        hints = listen_for_hints(
            self.config.daemon.db, hint_receiver(self._on_nudge), self.wake.set
        )
        for worker in self.workers:
            worker.thread.start()
        self.hosts.start()
        self.progress.expect("supervisor")
        listen = self.config.daemon.status_listen
        web = LegacyWeb(self, listen, self.token) if listen else None
        if web is not None:
            web.start()
        window_s = stall_window_s(self.config.daemon.lease_s, self.config.daemon.poll_s)
        watchdog = WatchdogThread(
            Notifier.from_env(), lambda: self.rounds + self.outage.progress(), stall_s=window_s
        )
        watchdog.start()
        try:
            self._supervise(store)
        finally:
            self.hosts.stop()
            self.progress.stopped = True
            self._stop(store)
            if web is not None:
                web.stop()
            listener.close()
            if hints is not None:
                hints.close()
            watchdog.stop()
        if self.abandoned:
            raise StoreAbandoned(STOPPED_UNRECORDED)

    def _register(self, store: Store, address: str) -> None:
        """Joins the queue's daemons, and states our file's slots."""
        started = own_start(os.getpid())
        self.owner = store.register_daemon(
            socket.gethostname(),
            os.getpid(),
            started.wall_us,
            address,
            "legacy",
            now_us(),
            pid_start_ticks=started.ticks,
            boot_id=started.boot_id,
        )
        self._state_slots(store)

    def _supervise(self, store: Store) -> None:
        """Renews leases, reaps dead owners' tasks, restarts pool threads that died, and notices
        idleness, until told to stop."""
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
            self._restart_dead_workers()
            self.limit_view.follow(self.patiently(store.pool_limits), self._slots())
            self._renew(store)
            self._reap(store)
            self._record_telemetry(store)
            self.rounds += 1
            self.progress.beat("supervisor")
            if (
                self.until_idle
                and all(w.running is None for w in self.workers)
                and not store.has_pending(self.config.kinds_served())
            ):
                log.info("queue_idle")
                return

    def _renew(self, store: Store) -> None:
        """Renews the leases of the attempts running now; stops those whose lease is gone."""
        asked_at, now = time.monotonic(), now_us()
        running = [(w, w.running) for w in self.all_workers()]
        live = [w.holding for w in self.all_workers() if w.holding is not None]
        renewal = self.patiently(lambda: store.renew(self.owner, live, now + self.lease_us(), now))
        log_orphans(renewal.orphans)
        if renewal.orphans:
            self.wake.set()
        for worker, attempt in running:
            # Claimed after we asked: the answer says nothing of it (as in keep_leases).
            if (
                attempt is not None
                and attempt.started < asked_at
                and attempt.claim.task_id not in renewal.held
            ):
                worker.interrupt(attempt.claim.task_id, "lease_lost")

    def _slots(self) -> dict[str, int]:
        return {w.pool.name: w.pool.slots for w in self.workers}

    def _state_slots(self, store: Store) -> None:
        """At start and on reload our file's slots become every daemon's limits (the store
        enforces them on our one-at-a-time claims too); the peers read them again at once."""
        slots, now = self._slots(), now_us()
        self.patiently(lambda: state_slots(store, self.owner, slots, now))
        nudge.send([x.nudge for x in store.daemons() if x.id != self.owner], nudge.PEERS)

    def _reap(self, store: Store) -> None:
        daemons = store.daemons()
        alive, dead = judge_daemons(daemons, self.owner, self.config.daemon.db)
        alive = spare_after_outage(alive, dead, daemons, self.outage, self.config.daemon.lease_s)
        if self.patiently(lambda: take_back(store, alive, dead, now_us())):
            self.wake.set()

    def _record_telemetry(self, store: Store) -> None:
        """What the hosts said since the last round, recorded for `ygg status`."""
        for pool, reading in self.hosts.take().items():
            data = reading.to_json() if reading is not None else None
            self.patiently(functools.partial(store.set_telemetry, self.owner, pool, data, now_us()))

    def _restart_dead_workers(self) -> None:
        """A pool thread that died is replaced (its task, if any, comes back with its lease);
        one that keeps dying takes the daemon down, so systemd restarts it whole."""
        for index, worker in enumerate(self.workers):
            if worker.thread.is_alive() or worker.closing or self.stopping.is_set():
                continue
            now = time.monotonic()
            name = worker.pool.name
            recent = [t for t in self._restarts.get(name, []) if now - t < 60.0] + [now]
            self._restarts[name] = recent
            if len(recent) > RESTARTS_PER_MINUTE:
                raise LegacyCrashed(
                    f"The thread of pool {name} died {len(recent)} times within a minute; "
                    f"the last error was {worker.crashed!r}."
                )
            log.error("pool_thread_restarted", pool=name, error=repr(worker.crashed))
            replacement = Worker(worker.pool, self)
            self.workers[index] = replacement
            replacement.thread.start()

    def all_workers(self) -> list[Worker]:
        return [*self.workers, *self.retiring]

    def _reload(self, store: Store) -> None:
        """As the async mode's reload: unchanged hosts keep their worker, the rest are replaced
        after their attempt; an invalid configuration changes nothing and is reported."""
        assert self.reload_config is not None
        log.info("config_reload_started")
        old = {w.pool.name: w for w in self.workers}
        try:
            config = bound_at_start(self.config, self.reload_config())
            changes = plan({name: w.pool for name, w in old.items()}, config)
            added = [Worker(pool, self) for pool in changes.start.values()]
        except YggError as exc:
            log.error("config_reload_failed", error=exc.message)
            store.set_config_error(self.owner, exc.message)
            return
        for name, pool in changes.keep.items():
            old[name].pool = pool
        for name in changes.retire:
            old[name].closing = True
            self.retiring.append(old[name])
        self.retiring = [w for w in self.retiring if w.thread.is_alive()]
        self.workers = [old[name] for name in changes.keep] + added
        for worker in added:
            worker.thread.start()
        self.config = config
        store.set_config_error(self.owner, None)
        self._state_slots(store)
        log.info("config_reloaded", pools={w.pool.name: 1 for w in self.workers})
        self.wake.set()

    def _log_status(self, store: Store) -> None:
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

    def _on_nudge(self, message: nudge.Nudge) -> None:
        if message.verb == nudge.CANCEL:
            if message.task_id is not None:
                self._cancel_if_cancelled(message.task_id)
        elif message.verb == nudge.RELOAD:
            self.reload_requested.set()
        else:
            self.wake.set()

    def _cancel_if_cancelled(self, task_id: int) -> None:
        """A cancel nudge is only a hint: the attempt on `task_id` stops only if the store says
        the task is cancelled. Runs on the listener's thread, on a connection of its own."""
        workers = [
            w for w in self.all_workers() if w.running and w.running.claim.task_id == task_id
        ]
        if not workers:
            return
        store = self.open()
        try:
            status = store.get(task_id).status
        finally:
            store.close()
        if status != "cancelled":
            self._nudge_log.emit(
                "nudge_cancel_ignored", level="info", task_id=task_id, status=status
            )
            return
        for worker in workers:
            worker.interrupt(task_id, "cancelled")

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _stop(self, store: Store) -> None:
        self.request_stop()
        log.info("dispatcher_stopping", drain_s=self.config.daemon.drain_s)
        deadline = time.monotonic() + self.config.daemon.drain_s
        for worker in self.all_workers():
            while worker.thread.is_alive() and time.monotonic() < deadline:
                if self.forced.is_set():
                    break
                worker.thread.join(0.05)
                self.rounds += 1  # a drain bounded by drain_s is progress too
        for worker in self.all_workers():
            worker.interrupt(None, "shutdown")
            # An HTTP request's connection is cut and a command killed at once; this bound is
            # for a request still connecting. Past it, the lease recovers the task.
            worker.thread.join(STOP_GRACE_S)
        self.forced.set()  # past the drain: writes the store cannot take now are given up
        with contextlib.suppress(StoreAbandoned):
            self.patiently(lambda: store.unregister_daemon(self.owner))
        store.close()
        log.info("dispatcher_stopped")
