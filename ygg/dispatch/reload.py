"""Live reload (SIGHUP, `ygg reload`): re-read the configuration and apply it without a restart.

An invalid configuration changes nothing: the daemon runs on and says why (log event, and the
daemon's row in the store, which `ygg status` shows). Otherwise: pools whose host settings are
unchanged keep their backend and running attempts and take the new slots, kinds and limits at
once (fewer slots never stop an attempt; the pool just claims less); removed pools, and pools
whose host changed, finish their running attempts and close their clients; added pools start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

import structlog

from ygg.backends import Backend, make_backend
from ygg.config import Config, PoolConfig
from ygg.dispatch.limits import publish
from ygg.errors import YggError
from ygg.store.base import Store

if TYPE_CHECKING:
    from ygg.dispatch.pool import PoolRunner
    from ygg.dispatch.state import Shared

log = structlog.get_logger("ygg.dispatch")


class Plan(NamedTuple):
    """What a reload changes, pool by pool."""

    keep: dict[str, PoolConfig]  # same host: the runner stays and takes these settings
    retire: list[str]  # removed, or its host changed: finishes its attempts, then closes
    start: dict[str, PoolConfig]  # added, or the replacement of a retired one


def plan(running: Mapping[str, PoolConfig], new: Config) -> Plan:
    """Pure: from the pools running now and the new configuration, what to keep, retire and
    start. A pool whose host settings changed is both retired and started (a new backend)."""
    keep = {
        name: pool
        for name, pool in new.pools.items()
        if name in running and running[name].same_host_as(pool)
    }
    retire = [name for name in running if name not in keep]
    start = {name: pool for name, pool in new.pools.items() if name not in keep}
    return Plan(keep, retire, start)


async def reload(d: Shared, read_config: Callable[[], Config]) -> bool:
    """Applies a fresh reading of the configuration; False if it was refused."""
    log.info("config_reload_started")
    d.observer.reloading(True)
    try:
        config = bound_at_start(d.config, read_config())
        changes = plan({name: r.config for name, r in d.runners.items()}, config)
        new_backends = {name: make_backend(pool) for name, pool in changes.start.items()}
    except YggError as exc:
        log.error("config_reload_failed", error=exc.message)
        await d.store.call(Store.set_config_error, d.owner, exc.message)
        d.observer.reloading(False)
        return False
    _apply(d, config, changes, new_backends)
    await d.store.call(Store.set_config_error, d.owner, None)
    await publish(d)  # a reload is an operator's word: its slots become everyone's limits
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


def _apply(d: Shared, config: Config, changes: Plan, new_backends: dict[str, Backend]) -> None:
    from ygg.dispatch.pool import PoolRunner

    for name, pool in changes.keep.items():
        d.runners[name].reconfigure(pool)
    for name in changes.retire:
        _retire(d, d.runners[name])
    d.config = config
    for name, backend in new_backends.items():
        runner = PoolRunner(config.pools[name], backend, d)
        d.runners[name] = runner
        d.start_runner(runner)
    d.wake_all()


def _retire(d: Shared, runner: PoolRunner) -> None:
    del d.runners[runner.name]
    d.retiring.add(runner)
    runner.closing = True
    runner.wake.set()
    d.fire(_finish(d, runner))


async def _finish(d: Shared, runner: PoolRunner) -> None:
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
