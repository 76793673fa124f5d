"""What the dispatcher's parts share: the state and the few actions a pool runner, the lease
keeper, the reaper, the observer and reload need, as one narrow interface.

They depend on this, not on `Dispatcher` (which implements it), so none of them imports the
dispatcher back, and each can be driven in a test by anything with these members.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ygg.config import Config
    from ygg.dispatch.limits import LimitView
    from ygg.dispatch.observe import Observer
    from ygg.dispatch.pool import PoolRunner
    from ygg.store.model import Daemon
    from ygg.store.writer import StoreThread


class Shared(Protocol):
    config: Config  # replaced as a whole by a reload
    store: StoreThread
    owner: int  # this daemon's id in the store's registry
    now_us: Callable[[], int]
    observer: Observer
    stopping: bool
    idle_hint: asyncio.Event
    runners: dict[str, PoolRunner]
    retiring: set[PoolRunner]  # removed by a reload, finishing their attempts
    peers: list[str]  # nudge addresses of the other daemons on this queue
    limit_view: LimitView  # what the store last said of the pools' limits
    limits_changed: asyncio.Event  # a peer may have changed a limit: read them again now

    def fire(self, coro: Coroutine[Any, Any, object]) -> None:
        """Runs `coro` as a supervised errand (its failure is logged, never lost)."""

    def start_runner(self, runner: PoolRunner) -> None: ...

    def kinds_for(self, runner: PoolRunner) -> list[str]:
        """The kinds `runner` claims now: its own, plus those of open-breaker pools it backs."""
        ...

    def slot_freed(self, runner: PoolRunner) -> None: ...

    def wake_all(self) -> None: ...

    def wake_kinds(self, kinds: Iterable[str], at_us: int | None = None) -> None: ...

    def all_runners(self) -> list[PoolRunner]: ...

    def running_count(self) -> int: ...

    async def refresh_peers(self) -> list[Daemon]: ...
