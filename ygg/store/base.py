"""The store interface: every domain operation ygg needs from a queue, whatever the engine.

An engine (ygg/store/sqlite/, one WAL file) implements `Store`; everything outside
`ygg/store/` talks to this interface and the types in `ygg.store.model`. Each operation is
atomic on its own; `batch()` lets a caller (the daemon's store thread) group many into one
commit, each still undone alone if it fails. Transient trouble (busy, disk full, connection
lost) raises `StoreUnavailable`, so callers retry by kind, never by engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ygg.store.completion import Completion
from ygg.store.history import Finished, HistoryRow
from ygg.store.model import (
    BreakerState,
    Claim,
    Daemon,
    Head,
    HostReport,
    NewTask,
    Outcome,
    PoolLimit,
    Reaped,
    Renewal,
    Task,
    Upsert,
    UpsertResult,
)


class Closeable(Protocol):
    def close(self) -> None: ...


class Store(Protocol):
    # --- submitting ----------------------------------------------------------------------
    def enqueue(self, task: NewTask, now_us: int) -> int: ...

    def enqueue_many(self, tasks: Sequence[NewTask], now_us: int) -> list[int]:
        """All or none; a bad item raises BatchItemError naming its index."""
        ...

    def upsert_external(
        self,
        items: Sequence[Upsert],
        now_us: int,
        progress: Callable[[int], None] | None = None,
    ) -> UpsertResult:
        """Inserts or updates tasks by `external_id` (an import), all or none."""
        ...

    # --- running -------------------------------------------------------------------------
    def claim(
        self,
        pool: str,
        kinds: Sequence[str],
        limit: int,
        *,
        slots: int,
        owner: int,
        lease_us: int,
        now_us: int,
    ) -> list[Claim]:
        """Up to `limit` of the most urgent ready tasks, never past the pool's stored limit
        (see `set_pool_limit`) running in `pool` across every daemon on the queue, read in the
        same transaction. `slots` (the caller's configured slots) counts only while the store
        holds no limit for the pool: it is then stored as its first limit (source "claim")."""
        ...

    def renew(
        self, owner: int, task_ids: Collection[int], lease_until_us: int, now_us: int
    ) -> Renewal: ...

    def complete(self, task_id: int, token: int, outcome: Outcome, now_us: int) -> list[str] | None:
        """Records success; returns the kinds of dependents promoted, None if the token is
        stale (the attempt lost its claim: nothing changes)."""
        ...

    def complete_many(self, items: Sequence[Completion]) -> list[list[str] | None]:
        """Records several successes at once, each as complete() would (None where the token
        is stale); the kinds of all the dependents promoted (in no particular order) come with
        the first item recorded.
        A database server's engine does it in a statement or two, not two per task."""
        ...

    def fail(
        self,
        task_id: int,
        token: int,
        error: str,
        *,
        retry_at_us: int | None,
        charge: bool,
        now_us: int,
    ) -> str | None:
        """Records a failed attempt: queued again (at `retry_at_us`) or failed; None if stale."""
        ...

    def release(self, task_id: int, token: int, *, block: bool, now_us: int) -> bool:
        """Gives back a task a graceful stop interrupted, without charging the attempt."""
        ...

    def reap(
        self, now_us: int, alive_owners: Collection[int], dead_owners: Collection[int] = ()
    ) -> list[Reaped]:
        """Takes back tasks whose owner's lease expired (owners known alive keep theirs) and
        every task of the dead, who are then forgotten."""
        ...

    # --- operators -----------------------------------------------------------------------
    def cancel(self, task_id: int, now_us: int) -> tuple[str, int | None]: ...

    def retry(self, task_id: int, now_us: int) -> str: ...

    def get(self, task_id: int) -> Task: ...

    def list_tasks(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Task]: ...

    def counts(self) -> dict[str, int]: ...

    def queue_heads(self) -> list[Head]:
        """Per kind: the task a pool would claim next, or the oldest waiting one."""
        ...

    def pool_load(self, pools: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, int]]:
        """Per pool: (running, queued and ready for its kinds)."""
        ...

    def finished_since(self, since_us: int, limit: int) -> list[Finished]:
        """Tasks finished (done, failed, cancelled) at or after `since_us`, newest first."""
        ...

    def history(self, since_us: int, bucket_us: int) -> list[HistoryRow]:
        """Tasks finished since `since_us`, counted per pool, status and bucket of time."""
        ...

    def has_pending(self, kinds: Sequence[str]) -> bool: ...

    # --- daemons and their breakers ------------------------------------------------------
    def register_daemon(
        self,
        hostname: str,
        pid: int,
        pid_started_us: int,
        nudge: str,
        mode: str,
        now_us: int,
        *,
        pid_start_ticks: int | None = None,
        boot_id: str | None = None,
    ) -> int: ...

    def unregister_daemon(self, daemon_id: int) -> None: ...

    def set_config_error(self, daemon_id: int, error: str | None) -> None: ...

    def daemons(self) -> list[Daemon]: ...

    def set_breaker(
        self, daemon_id: int, pool: str, state: str, reason: str | None, now_us: int
    ) -> None: ...

    def breakers(self) -> list[BreakerState]: ...

    def set_telemetry(
        self, daemon_id: int, pool: str, data: Mapping[str, Any] | None, now_us: int
    ) -> None:
        """Records what `pool`'s host last said about its load (JSON); None forgets it."""
        ...

    def telemetry(self) -> list[HostReport]:
        """Every daemon's last reading of every host, by pool then daemon."""
        ...

    # --- slot limits: one per pool, shared by every daemon on the queue -------------------
    def set_pool_limit(
        self,
        pool: str,
        limit: int,
        *,
        daemon_id: int | None,
        now_us: int,
        configured: int | None = None,
        source: str = "config",
    ) -> PoolLimit:
        """Sets how many tasks `pool` may run at once across every daemon, from the next
        claim on. Lowered below what runs, the running tasks finish and no new one starts
        until the pool is under the limit. `configured`: the slots of the configuration this
        comes from (None keeps the stored one, as an adaptive change does)."""
        ...

    def pool_limits(self) -> dict[str, PoolLimit]:
        """Every stored limit, with the slots each live daemon's file gives the pool."""
        ...

    def declare_slots(self, daemon_id: int, slots: Mapping[str, int]) -> None:
        """Records the `slots` the daemon's configuration file gives each of its pools
        (replacing what it declared before), so status can show who disagrees."""
        ...

    # --- the store itself ----------------------------------------------------------------
    def batch(self, *, savepoints: bool = True) -> AbstractContextManager[None]:
        """Operations inside commit together; nested, it undoes only its own on failure.

        `savepoints=False` (outermost only) lets an engine whose savepoints cost round trips to
        a server run the operations inside without one each: if any of them fails, the whole
        batch is rolled back and BatchUndone raised, for the caller to run it again with
        savepoints. An engine whose savepoints are cheap may ignore it."""
        ...

    def check(self) -> None:
        """Reads the whole store; raises StoreRefused if it is damaged."""
        ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...
