"""The daemon's state at one moment: what `/status` serves, `/metrics` gauges and `ygg top` shows.

The shape extends the contract's `status --json` (`pools`, `tasks`) with `daemon` and `running`.
It is built from plain data so it can be made by the dispatcher, by the CLI from the database
alone, and by tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypedDict

from ygg.config import Config
from ygg.store.model import STATUSES, HostReport, iso

if TYPE_CHECKING:
    from ygg.store.base import Store

# Breaker states and the number `ygg_pool_breaker_state` exports for each.
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class DaemonInfo(TypedDict):
    pid: int | None  # None: no daemon answered (a view read from the database alone)
    queue: str  # the daemon.db it serves: a client checks it is looking at its own queue
    mode: str  # async | legacy | none
    started_at: str | None  # ISO 8601 UTC
    config_path: str | None


class PoolRow(TypedDict):
    name: str
    host: str
    backend: str
    slots: int
    limit: int  # what it may run at once now, across every daemon: the stored limit
    running: int  # across every daemon on the queue
    queued: int  # queued tasks of the kinds it serves (including those in a retry backoff)
    breaker: str  # closed | half-open | open | unknown
    breaker_reason: str | None
    kinds: list[str]
    # What the pool's host says of its load (HostTelemetry.to_json()); None: it says nothing.
    telemetry: dict[str, Any] | None


class RunningRow(TypedDict):
    id: int
    title: str
    kind: str
    pool: str | None
    attempt: int
    started_at: str | None


class Snapshot(TypedDict):
    daemon: DaemonInfo
    pools: list[PoolRow]
    tasks: dict[str, int]
    running: list[RunningRow]


@dataclass(frozen=True)
class PoolInfo:
    """What a snapshot needs to know of one pool besides its load."""

    name: str
    host: str
    backend: str
    slots: int
    kinds: tuple[str, ...] = ()
    breaker: str = "closed"
    breaker_reason: str | None = None
    limit: int | None = None  # the stored limit, every daemon's; None: none known, its slots
    telemetry: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunningInfo:
    task_id: int
    title: str
    kind: str
    pool: str | None
    attempt: int
    started_us: int | None  # wall clock, microseconds since the epoch


def pools_of(
    config: Config, breaker: str = "closed", limits: Mapping[str, int] | None = None
) -> list[PoolInfo]:
    """The configured pools, all with the same breaker state (the database does not know it),
    with their stored limits."""
    limits = limits or {}
    return [
        PoolInfo(
            p.name, p.host, p.backend, p.slots, tuple(p.kinds), breaker, limit=limits.get(p.name)
        )
        for p in config.pools.values()
    ]


def daemon_info(
    pid: int | None, mode: str, started_us: int | None, config_path: str | None, queue: str
) -> DaemonInfo:
    return {
        "pid": pid,
        "queue": queue,
        "mode": mode,
        "started_at": iso(started_us),
        "config_path": config_path,
    }


def build_snapshot(
    *,
    daemon: DaemonInfo,
    pools: Iterable[PoolInfo],
    load: Mapping[str, tuple[int, int]],
    counts: Mapping[str, int],
    running: Iterable[RunningInfo],
) -> Snapshot:
    """`load` is `store.pool_load()`'s answer (running, queued) per pool name; `counts` is
    `store.counts()`; a pool missing from `load` shows zeros."""
    tasks = {str(status): int(counts.get(status, 0)) for status in STATUSES}
    tasks.update({s: int(n) for s, n in counts.items() if s not in tasks})
    return {
        "daemon": daemon,
        "pools": [_pool_row(pool, load.get(pool.name, (0, 0))) for pool in pools],
        "tasks": tasks,
        "running": [
            {
                "id": r.task_id,
                "title": r.title,
                "kind": r.kind,
                "pool": r.pool,
                "attempt": r.attempt,
                "started_at": iso(r.started_us),
            }
            for r in sorted(running, key=lambda r: (r.pool or "", r.task_id))
        ],
    }


def _pool_row(pool: PoolInfo, load: tuple[int, int]) -> PoolRow:
    return {
        "name": pool.name,
        "host": pool.host,
        "backend": pool.backend,
        "slots": pool.slots,
        "limit": pool.slots if pool.limit is None else pool.limit,
        "running": load[0],
        "queued": load[1],
        "breaker": pool.breaker,
        "breaker_reason": pool.breaker_reason,
        "kinds": list(pool.kinds),
        "telemetry": pool.telemetry,
    }


def latest_telemetry(reports: Iterable[HostReport], live: set[int]) -> dict[str, dict[str, Any]]:
    """Per pool, the latest reading any live daemon recorded of its host."""
    latest: dict[str, HostReport] = {}
    for report in reports:
        if report.daemon in live and (
            report.pool not in latest or report.since_us > latest[report.pool].since_us
        ):
            latest[report.pool] = report
    return {pool: report.data for pool, report in latest.items()}


def snapshot_from_store(store: Store, config: Config, running_limit: int = 200) -> Snapshot:
    """What the database alone can tell (no breaker states), for when no daemon answers."""
    load = store.pool_load({name: pool.kinds for name, pool in config.pools.items()})
    running = [
        RunningInfo(t.id, t.title, t.kind, t.pool, t.attempts, t.started_us)
        for t in store.list_tasks(status="running", limit=running_limit)
    ]
    daemons = store.daemons()
    telemetry = latest_telemetry(store.telemetry(), {d.id for d in daemons})
    first = daemons[0] if daemons else None
    daemon = daemon_info(
        first.pid if first else None,
        first.mode if first else "none",
        None,
        str(config.path) if config.path else None,
        config.daemon.db,
    )
    return build_snapshot(
        daemon=daemon,
        pools=[
            replace(pool, telemetry=telemetry.get(pool.name))
            for pool in pools_of(
                config, "unknown", {name: x.limit for name, x in store.pool_limits().items()}
            )
        ],
        load=load,
        counts=store.counts(),
        running=running,
    )
