"""The asyncio dispatcher: pools, nudges, leases and the phased stop, on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import os
import socket
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import structlog

from ygg import nudge
from ygg.backends import make_backend
from ygg.config import Config
from ygg.dispatch import limits
from ygg.dispatch.breaker import CLOSED
from ygg.dispatch.host_watch import watch_hosts
from ygg.dispatch.leases import keep_leases, reap_expired
from ygg.dispatch.liveness import own_start
from ygg.dispatch.nudge_listen import Listener, LogLimiter, hint_receiver
from ygg.dispatch.observe import Observer
from ygg.dispatch.pool import PoolRunner
from ygg.dispatch.reload import reload
from ygg.store import listen_for_hints, open_store, queue_path
from ygg.store.base import Closeable, Store
from ygg.store.model import US, Daemon, now_us
from ygg.store.writer import STOPPED_UNRECORDED, StoreAbandoned, StoreThread

log = structlog.get_logger("ygg.dispatch")
TIMER_SLACK_S = 0.005
STOP_WRITE_GRACE_S = 10.0  # after the drain, how long outcome writes may wait for the store
# Allocations between two collections of the young generation. An attempt makes a few dozen
# objects that live until it ends (few in cycles): at the default 700 the collector ran every
# ~20 tasks, 3 % of the daemon's instructions per task.
GC_YOUNG_THRESHOLD = 10_000


class Dispatcher:
    def __init__(
        self,
        config: Config,
        *,
        until_idle: bool = False,
        clock: Callable[[], int] = now_us,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.reload_config = reload_config  # re-reads the configuration, for SIGHUP
        self.until_idle = until_idle
        self.now_us = clock
        self.store = StoreThread(
            lambda: open_store(
                config.daemon.db, synchronous=config.daemon.synchronous, busy_timeout_s=5.0
            )
        )
        self.owner = 0
        self.runners: dict[str, PoolRunner] = {}
        self.retiring: set[PoolRunner] = set()  # removed by a reload, finishing their attempts
        self.stopping = False
        self.idle_hint = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._drain_cut = asyncio.Event()
        self._side_tasks: list[asyncio.Task[None]] = []
        self._listener: Listener | None = None
        self._hints: Closeable | None = None  # the store's wake-ups from other machines
        self._nudge_log = LogLimiter()
        self.crashed: BaseException | None = None
        self.peers: list[str] = []  # nudge addresses of the other daemons on this queue
        self.limit_view = limits.LimitView()
        self.limits_changed = asyncio.Event()
        self._peer_nudge_due = False
        self._errands: set[asyncio.Task[object]] = set()
        self.observer = Observer(self)

    # --- starting ----------------------------------------------------------------------------
    async def start(self) -> None:
        # Everything loaded so far (httpx, prometheus, structlog, ...) lives as long as we do:
        # kept out of the collector, a full collection never stalls the loop scanning it.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        # Backends first: a pool that cannot be built (say, a missing API key) stops us
        # before we have told the queue we are here.
        for pool in self.config.pools.values():
            self.runners[pool.name] = PoolRunner(pool, make_backend(pool), self)
        # /healthz and systemd hear from us while a database server that is down is waited for.
        await self.observer.open()
        await self.store.start()
        self._listener = Listener(
            nudge.new_address(), self._on_nudge, queue_path(self.config.daemon.db)
        )
        started = own_start(os.getpid())
        address, now = self._listener.address, self.now_us()
        self.owner = await self.store.call(
            Store.register_daemon,
            socket.gethostname(),
            os.getpid(),
            started.wall_us,
            address,
            "async",
            now,
            pid_start_ticks=started.ticks,
            boot_id=started.boot_id,
        )
        self._listener.start()
        self._hints = self._listen_for_hints()
        await self.refresh_peers()
        # Our file's slots become the limits of every daemon on the queue; the peers are
        # nudged, so they count us in and read the limits at once.
        await limits.publish(self)
        self._spawn("lease_keeper", keep_leases(self))
        self._spawn("limits", limits.watch(self))
        self._spawn("reaper", reap_expired(self))
        self._spawn("status_logger", self._log_status())
        self._spawn("host_watch", watch_hosts(self, self.observer.hosts))
        for runner in self.runners.values():
            self.start_runner(runner)
        await self.observer.start()
        log.info(
            "dispatcher_started",
            owner=self.owner,
            db=self.config.daemon.db,
            pools={name: r.config.slots for name, r in self.runners.items()},
        )

    def start_runner(self, runner: PoolRunner) -> None:
        self._spawn(f"pool:{runner.name}", runner.run())
        runner.task = self._side_tasks[-1]

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._side_task_done)
        self._side_tasks.append(task)

    def fire(self, coro: Coroutine[Any, Any, object]) -> None:
        """A short errand on the loop; keeps a reference so it is not collected mid-way."""
        # A fresh context: an errand started by an attempt must not log as that attempt.
        task = asyncio.create_task(coro, context=contextvars.Context())
        self._errands.add(task)
        task.add_done_callback(self._errand_done)

    def _errand_done(self, task: asyncio.Task[object]) -> None:
        self._errands.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("errand_failed", error=repr(task.exception()))

    def _side_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.stopping:
            return
        error = task.exception()
        if error is None and any(r.task is task for r in self.retiring):
            return  # a removed pool's claim loop ends by design
        # A supervised part that dies takes the daemon down, so systemd restarts it whole.
        log.error("side_task_died", name=task.get_name(), error=repr(error))
        self.crashed = error
        self.request_stop()

    # --- events ------------------------------------------------------------------------------
    def _listen_for_hints(self) -> Closeable | None:
        """The store's hints (PostgreSQL's NOTIFY) arrive on a thread of their own and are
        handled here as nudges; after each (re)connect every pool looks at the queue."""
        loop = asyncio.get_running_loop()
        return listen_for_hints(
            self.config.daemon.db,
            hint_receiver(lambda message: loop.call_soon_threadsafe(self._on_nudge, message)),
            lambda: loop.call_soon_threadsafe(self.wake_all),
        )

    def _on_nudge(self, message: nudge.Nudge) -> None:
        if message.verb == nudge.CANCEL:
            # Only a hint: the store has the last word (see _cancel_if_cancelled).
            task_id = message.task_id
            if task_id is not None and any(task_id in r.attempts for r in self.all_runners()):
                self.fire(self._cancel_if_cancelled(task_id))
            return
        if message.verb == nudge.PEERS:
            self.fire(self.refresh_peers())
            self.limits_changed.set()
            return
        if message.verb == nudge.RELOAD:
            self.request_reload()
            return
        if self.observer.events.streams:  # a submit or retry elsewhere: watchers look again
            self.observer.events.publish({"type": "queue"})
        self.wake_all()

    async def _cancel_if_cancelled(self, task_id: int) -> None:
        """Stops the attempt on `task_id` only if the task really is cancelled in the store."""
        status = (await self.store.read(Store.get, task_id)).status
        if status == "cancelled":
            self.stop_attempt(task_id, "cancelled")
        else:
            self._nudge_log.emit(
                "nudge_cancel_ignored", level="info", task_id=task_id, status=status
            )

    def kinds_for(self, runner: PoolRunner) -> list[str]:
        """The kinds `runner` claims: its own, and those of pools whose breaker is not closed
        that list it as a fallback."""
        kinds = list(runner.config.kinds)
        for other in self.runners.values():
            if other.breaker.state != CLOSED and runner.name in other.config.fallback:
                kinds += [k for k in other.config.kinds if k not in kinds]
        return kinds

    def wake_all(self) -> None:
        for runner in self.runners.values():
            runner.wake.set()

    def wake_kinds(self, kinds: Iterable[str], at_us: int | None = None) -> None:
        """Wakes the pools serving `kinds`, now or at `at_us` (when a backoff ends)."""
        kinds = set(kinds)
        runners = [r for r in self.runners.values() if kinds.intersection(self.kinds_for(r))]
        if at_us is None:
            for runner in runners:
                runner.wake.set()
            return
        # The loop's timers may fire a little early against the wall clock; a claim made
        # before the backoff ends would find nothing and wait for the next safety poll.
        delay_s = max((at_us - self.now_us()) / US, 0.0) + TIMER_SLACK_S
        loop = asyncio.get_running_loop()
        for runner in runners:
            loop.call_later(delay_s, runner.wake.set)

    def slot_freed(self, runner: PoolRunner) -> None:
        """Our slot is free: claim again, and let the other daemons on the queue know, since
        their claims may have been refused while the pool was full (one datagram per peer per
        loop iteration, however many slots were freed in it)."""
        runner.wake.set()
        if self.peers and not self._peer_nudge_due:
            self._peer_nudge_due = True
            asyncio.get_running_loop().call_soon(self._nudge_peers)

    async def refresh_peers(self) -> list[Daemon]:
        daemons = await self.store.read(Store.daemons)
        self.peers = [x.nudge for x in daemons if x.id != self.owner]
        return daemons

    def _nudge_peers(self) -> None:
        self._peer_nudge_due = False
        nudge.send(self.peers)

    def all_runners(self) -> list[PoolRunner]:
        """The configured pools and those a reload removed that still finish attempts."""
        return [*self.runners.values(), *self.retiring]

    def stop_attempt(self, task_id: int, reason: str) -> bool:
        return any(r.stop_attempt(task_id, reason) for r in self.all_runners())

    def running_count(self) -> int:
        return sum(len(r.attempts) for r in self.all_runners())

    def request_reload(self) -> None:
        if self.reload_config is not None and not self.stopping:
            self.fire(reload(self, self.reload_config))

    def request_stop(self) -> None:
        self._stop_requested.set()
        if not self.owner:  # still waiting for the store to open: stop waiting
            self.store.abandon()

    def force_stop(self) -> None:
        """A second signal: end the drain now; running attempts are released at once, and a
        store that cannot take those writes now is not waited for (leases recover the tasks)."""
        self._drain_cut.set()
        self.store.abandon()
        self._stop_requested.set()

    # --- running -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Runs until asked to stop (or, with until_idle, until nothing is left to do)."""
        try:
            await self.start()
        except BaseException as exc:
            await self._stop_unstarted()
            if isinstance(exc, StoreAbandoned) and self._stop_requested.is_set():
                log.info("dispatcher_stopped", reason="stopped before the store was reached")
                return
            raise
        try:
            if self.until_idle:
                await self._wait_idle()
            else:
                await self._stop_requested.wait()
        finally:
            await self.stop()

    async def _wait_idle(self) -> None:
        while not self._stop_requested.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.daemon.poll_s):
                    await self.idle_hint.wait()
            self.idle_hint.clear()
            kinds = self.config.kinds_served()
            if self.running_count() == 0 and not await self.store.read(Store.has_pending, kinds):
                log.info("queue_idle")
                return

    async def stop(self, *, drain_s: float | None = None) -> None:
        """Stops claiming, lets attempts finish for `drain_s`, then interrupts the rest."""
        if self.stopping:
            return
        self.stopping = True
        self.observer.stopping()
        self.wake_all()
        # Each runner finishes the claim it may have in flight, then claims nothing more.
        await asyncio.gather(
            *(r.task for r in self.all_runners() if r.task), return_exceptions=True
        )
        drain_s = self.config.daemon.drain_s if drain_s is None else drain_s
        attempts = [a.task for r in self.all_runners() for a in r.attempts.values() if a.task]
        log.info("dispatcher_stopping", running=len(attempts), drain_s=drain_s)
        if attempts:
            drained = asyncio.ensure_future(asyncio.wait(attempts))
            cut = asyncio.ensure_future(self._drain_cut.wait())
            await asyncio.wait([drained, cut], timeout=drain_s, return_when=asyncio.FIRST_COMPLETED)
            cut.cancel()
            for runner in self.all_runners():
                for task_id in list(runner.attempts):
                    runner.stop_attempt(task_id, "shutdown")
            await self._await_writes(drained)
        for task in self._side_tasks:
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
        for runner in self.all_runners():
            await runner.backend.aclose()
        if self._listener is not None:
            self._listener.close()
        if self._hints is not None:
            await asyncio.to_thread(self._hints.close)
        try:
            await self.store.call(Store.unregister_daemon, self.owner)
        except StoreAbandoned:
            self.crashed = StoreAbandoned(STOPPED_UNRECORDED)
        await self.store.stop()
        await self.observer.stop()
        log.info("dispatcher_stopped")

    async def _stop_unstarted(self) -> None:
        """What a start that failed (or was stopped while the store was out of reach) leaves
        running: the store thread, the status server."""
        with contextlib.suppress(Exception):
            await self.store.stop()
        await self.observer.stop()

    async def _await_writes(self, recorded: asyncio.Future[Any]) -> None:
        """Waits for the interrupted attempts to record how they ended. A store that stays
        unavailable past STOP_WRITE_GRACE_S is abandoned, as on a forced stop."""
        try:
            await asyncio.wait_for(asyncio.shield(recorded), STOP_WRITE_GRACE_S)
        except TimeoutError:
            log.warning("store_writes_overdue", grace_s=STOP_WRITE_GRACE_S)
            self.store.abandon()
            await recorded

    async def _log_status(self) -> None:
        while True:
            await asyncio.sleep(self.config.daemon.status_log_s)
            pools = {name: r.config.kinds for name, r in self.runners.items()}
            load = await self.store.read(Store.pool_load, pools)
            self.observer.notifier.status(self.observer.summary(sum(q for _, q in load.values())))
            log.info(
                "pool_status",
                pools={
                    name: {
                        "running": len(r.attempts),
                        "slots": r.config.slots,
                        "limit": r.limit,
                        "queued": load[name][1],
                        "running_all_daemons": load[name][0],
                    }
                    for name, r in self.runners.items()
                },
            )
