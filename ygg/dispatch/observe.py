"""How the running daemon is watched: systemd notifications, metrics, `/status` and `/healthz`.

One `Observer` per dispatcher. It is started once the store is open and the pools are up (that
is when systemd hears READY=1) and stopped last. The status server is an optional extra: if its
address is taken (say, by a second daemon on the machine) the daemon runs on without it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

import structlog

from ygg.dispatch.host_watch import HostWatch
from ygg.ops.http_status import StatusServer, check_listen, start_status_server, status_token
from ygg.ops.metrics import Metrics
from ygg.ops.progress import Progress, stall_window_s
from ygg.ops.sdnotify import Notifier, watchdog_pinger
from ygg.ops.snapshot import PoolInfo, RunningInfo, Snapshot, build_snapshot, daemon_info
from ygg.ops.web.events import EventHub
from ygg.ops.web.tasks import TaskApi
from ygg.store import open_store
from ygg.store.base import Store
from ygg.store.model import US

if TYPE_CHECKING:
    from ygg.dispatch.state import Shared

log = structlog.get_logger("ygg.dispatch")
PERIODIC = ("reaper", "lease_keeper")  # the loops whose beats /healthz and the watchdog need


class Observer:
    def __init__(self, d: Shared) -> None:
        self.d = d
        # Checked before anything starts: a public address without a token is a config error.
        self.token = status_token()
        if d.config.daemon.status_listen:
            check_listen(d.config.daemon.status_listen, self.token)
        self.notifier = Notifier.from_env()
        lease_s, poll_s = d.config.daemon.lease_s, d.config.daemon.poll_s
        self.progress = Progress(max_age_s=stall_window_s(lease_s, poll_s))
        self.metrics = Metrics(self.progress)
        self.heartbeats = 0  # reaper cycles: moves while idle, and only if the store thread does
        self.started_us = d.now_us()
        self.events = EventHub()  # what /api/events streams; fed by the pools
        self.hosts = HostWatch()  # what each pool's host says of its load (watch_hosts reads)
        self._server: StatusServer | None = None
        self._tasks: TaskApi | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def beat(self, name: str) -> None:
        self.progress.beat(name)
        if name == "reaper":
            self.heartbeats += 1

    async def start(self) -> None:
        for name in PERIODIC:
            self.progress.expect(name)
        if self.d.config.daemon.status_listen:
            await self._serve_status(self.d.config.daemon.status_listen)
        # Judged over the /healthz window, not one watchdog interval: a reaper cycle may
        # rightly take longer than a short WatchdogSec (systemd uses at least the interval).
        pinger = watchdog_pinger(
            self.notifier, lambda: self.heartbeats, stall_s=self.progress.max_age_s
        )
        self._watchdog = asyncio.create_task(pinger, name="watchdog")
        self.notifier.ready(self.summary())

    async def _serve_status(self, listen: str) -> None:
        db = self.d.config.daemon.db
        config = lambda: self.d.config  # noqa: E731  (read at each request: reloads replace it)
        self._tasks = TaskApi(lambda: open_store(db, busy_timeout_s=5.0), config, self.events)
        try:  # the server logs status_server_started itself
            self._server = await start_status_server(
                listen,
                self.token,
                self.snapshot,
                self.progress.healthy,
                self.metrics,
                tasks=self._tasks,
                events=self.events,
            )
        except OSError as exc:
            log.warning("status_server_unavailable", listen=listen, error=str(exc))
            return
        assert self._server.serving is not None
        self._server.serving.add_done_callback(self._server_ended)

    def _server_ended(self, task: asyncio.Task[None]) -> None:
        # Supervised: an optional extra, so the daemon runs on, but never silently without it.
        if not task.cancelled() and task.exception() is not None:
            log.error("status_server_died", error=repr(task.exception()))

    def stopping(self) -> None:
        self.progress.stopped = True
        self.notifier.stopping(f"draining {self.d.running_count()} attempts")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._server is not None:
            await self._server.close()
        if self._tasks is not None:
            await asyncio.to_thread(self._tasks.close)
        self.notifier.close()

    def reloading(self, begins: bool) -> None:
        if begins:
            self.notifier.reloading("reloading configuration")
        else:
            self.notifier.ready(self.summary())  # also after a refused reload: we run on

    def summary(self, queued: int | None = None) -> str:
        runners = self.d.runners.values()
        running = sum(len(r.attempts) for r in runners)
        slots = sum(r.config.slots for r in runners)
        return f"running {running}/{slots}" + (f", queued {queued}" if queued is not None else "")

    async def snapshot(self) -> Snapshot:
        d = self.d
        kinds = {name: r.config.kinds for name, r in d.runners.items()}
        load = await d.store.read(Store.pool_load, kinds)
        counts = await d.store.read(Store.counts)
        now, mono = d.now_us(), time.monotonic()
        running = [
            RunningInfo(
                a.claim.task_id,
                a.claim.title,
                a.claim.kind,
                r.name,
                a.claim.attempt,
                now - int((mono - a.started) * US),
            )
            for r in d.all_runners()
            for a in r.attempts.values()
        ]
        pools = [
            PoolInfo(
                r.name,
                r.config.host,
                r.config.backend,
                r.config.slots,
                r.config.kinds,
                r.breaker.state,
                r.breaker.reason,
                limit=r.limit,
                telemetry=self.hosts.reading(r.name),
            )
            for r in d.runners.values()
        ]
        path = str(d.config.path) if d.config.path else None
        return build_snapshot(
            daemon=daemon_info(os.getpid(), "async", self.started_us, path, d.config.daemon.db),
            pools=pools,
            load=load,
            counts=counts,
            running=running,
        )
