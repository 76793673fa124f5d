"""Slot limits held by the store, from the daemon's side (both loop modes).

A daemon states its file's `slots` at start and on every reload (an operator's action): that
sets each pool's limit for every daemon on the queue, and records what this daemon's file says,
so `ygg status` can show a daemon whose file disagrees. Claims obey the stored limit in the
store itself; a daemon reads it back only to know how many to ask for (`PoolRunner.limit`), on
a timer (the safety poll) and whenever a peer says it changed something (the `peers` nudge,
or PostgreSQL's NOTIFY of it), and says once per change when its file disagrees.

The next step, adaptive slots, changes a pool's limit at runtime with `change(d, pool, n)`:
`Store.set_pool_limit(..., source="adaptive")` (configured slots unchanged: they stay the
ceiling), its own runner follows at once, the peers are nudged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from ygg import nudge
from ygg.errors import YggError
from ygg.store.base import Store
from ygg.store.model import PoolLimit, iso

if TYPE_CHECKING:
    from ygg.dispatch.state import Shared

log = structlog.get_logger("ygg.dispatch")


def state_slots(
    store: Store, owner: int, slots: Mapping[str, int], now_us: int
) -> dict[str, PoolLimit]:
    """This daemon's file sets every one of its pools' limits, in one transaction."""
    with store.batch():
        store.declare_slots(owner, slots)
        return {
            pool: store.set_pool_limit(
                pool, n, daemon_id=owner, now_us=now_us, configured=n, source="config"
            )
            for pool, n in slots.items()
        }


class LimitView:
    """What this daemon last heard of the stored limits; says when its file disagrees."""

    def __init__(self) -> None:
        self._said: dict[str, tuple[int, int | None, int]] = {}

    def follow(self, limits: Mapping[str, PoolLimit], slots: Mapping[str, int]) -> dict[str, int]:
        """The stored limit of each of our pools that has one; logs `pool_limit_disagrees`
        once for each change of what the stored limit came from or of our own slots."""
        for pool, own in slots.items():
            stored = limits.get(pool)
            if stored is None or stored.configured == own:
                self._said.pop(pool, None)
                continue
            seen = (stored.configured, stored.set_by, own)
            if self._said.get(pool) != seen:
                self._said[pool] = seen
                log.warning(
                    "pool_limit_disagrees",
                    pool=pool,
                    limit=stored.limit,
                    configured=stored.configured,
                    slots=own,
                    set_by=stored.set_by,
                    set_at=iso(stored.set_us),
                    source=stored.source,
                )
        return {pool: limits[pool].limit for pool in slots if pool in limits}


# --- the async mode --------------------------------------------------------------------------
def own_slots(d: Shared) -> dict[str, int]:
    return {name: r.config.slots for name, r in d.runners.items()}


async def publish(d: Shared) -> None:
    """Start and reload: our file's slots become every daemon's limits; the peers hear of it."""
    limits = await d.store.call(state_slots, d.owner, own_slots(d), d.now_us())
    apply(d, limits)
    nudge.send(d.peers, nudge.PEERS)  # they read the limits again at once


async def change(d: Shared, pool: str, limit: int, *, source: str = "adaptive") -> PoolLimit:
    """Changes `pool`'s stored limit at runtime (adaptive control), for every daemon on the
    queue: the configured slots stay (the ceiling), our runner follows at once, the peers
    when nudged (or on their poll)."""
    stored = await d.store.call(
        Store.set_pool_limit, pool, limit, daemon_id=d.owner, now_us=d.now_us(), source=source
    )
    if pool in d.runners:
        d.runners[pool].follow(stored.limit)
    nudge.send(d.peers, nudge.PEERS)
    return stored


async def refresh(d: Shared) -> None:
    apply(d, await d.store.read(Store.pool_limits))


def apply(d: Shared, limits: Mapping[str, PoolLimit]) -> None:
    for pool, limit in d.limit_view.follow(limits, own_slots(d)).items():
        d.runners[pool].follow(limit)


async def watch(d: Shared) -> None:
    """Reads the stored limits on the safety poll's timer, and at once when nudged."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(d.config.daemon.poll_s):
                await d.limits_changed.wait()
        d.limits_changed.clear()
        try:
            await refresh(d)
        except YggError as exc:  # the store waits out transient trouble; this is the rest
            log.error("pool_limits_unread", error=exc.message)
