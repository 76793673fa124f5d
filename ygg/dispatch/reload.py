"""Live reload (SIGHUP, `ygg reload`): re-read the configuration and apply it without a restart.

An invalid configuration changes nothing: the daemon runs on and says why (log event, and the
daemon's row in the store, which `ygg status` shows). Otherwise: pools whose host settings are
unchanged keep their backend and running attempts and take the new slots, kinds and limits at
once (fewer slots never stop an attempt; the pool just claims less); removed pools, and pools
whose host changed, finish their running attempts and close their clients; added pools start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from ygg.backends import Backend, make_backend
from ygg.config import Config
from ygg.errors import YggError
from ygg.store import SQLiteStore

if TYPE_CHECKING:
    from ygg.dispatch.dispatcher import Dispatcher
    from ygg.dispatch.pool import PoolRunner

log = structlog.get_logger("ygg.dispatch")


async def reload(d: Dispatcher, read_config: Callable[[], Config]) -> bool:
    """Applies a fresh reading of the configuration; False if it was refused."""
    log.info("config_reload_started")
    d.observer.reloading(True)
    try:
        config = read_config()
        new_backends = {
            name: make_backend(pool)
            for name, pool in config.pools.items()
            if name not in d.runners or not d.runners[name].config.same_host_as(pool)
        }
    except YggError as exc:
        log.error("config_reload_failed", error=exc.message)
        await d.store.call(SQLiteStore.set_config_error, d.owner, exc.message)
        d.observer.reloading(False)
        return False
    _apply(d, bound_at_start(d.config, config), new_backends)
    await d.store.call(SQLiteStore.set_config_error, d.owner, None)
    log.info("config_reloaded", pools={name: r.config.slots for name, r in d.runners.items()})
    d.observer.reloading(False)
    return True


def bound_at_start(running: Config, config: Config) -> Config:
    """`config` with the settings a running daemon cannot change (its queue, its status
    address) kept as they are; a change to them is logged as needing a restart."""
    for key in ("db", "status_listen"):
        if getattr(config.daemon, key) != getattr(running.daemon, key):
            log.warning("config_change_needs_restart", key=f"daemon.{key}")
    kept = config.daemon._replace(db=running.daemon.db, status_listen=running.daemon.status_listen)
    return config._replace(daemon=kept)


def _apply(d: Dispatcher, config: Config, new_backends: dict[str, Backend]) -> None:
    from ygg.dispatch.pool import PoolRunner

    for name, runner in list(d.runners.items()):
        if name in config.pools and name not in new_backends:
            runner.reconfigure(config.pools[name])
        else:
            _retire(d, runner)
    d.config = config
    for name, backend in new_backends.items():
        runner = PoolRunner(config.pools[name], backend, d)
        d.runners[name] = runner
        d.start_runner(runner)
    d.wake_all()


def _retire(d: Dispatcher, runner: PoolRunner) -> None:
    del d.runners[runner.name]
    d.retiring.add(runner)
    runner.closing = True
    runner.wake.set()
    d.fire(_finish(d, runner))


async def _finish(d: Dispatcher, runner: PoolRunner) -> None:
    """A removed pool: its claim loop ends, its attempts finish, then its clients close."""
    if runner.task is not None:
        await asyncio.gather(runner.task, return_exceptions=True)
    attempts = [a.task for a in runner.attempts.values() if a.task]
    if attempts:
        await asyncio.wait(attempts)
    if not d.stopping:  # otherwise stop() closes it
        await runner.backend.aclose()
        d.retiring.discard(runner)
    log.info("pool_retired", pool=runner.name)
