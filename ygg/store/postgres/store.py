"""The PostgreSQL store: every domain operation is one transaction (or a savepoint of a batch).

The semantics are the SQLite engine's (ygg/store/sqlite/store.py), operation by operation;
what differs is how they hold with writers running side by side: rows an operation decides on
are locked (`FOR UPDATE`, the reaper's `SKIP LOCKED`), every status change out of `running` is
fenced by the claim's token, and slot limits are rows (claims.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from ygg.errors import InvalidInput, TaskNotFound
from ygg.store.completion import Completion
from ygg.store.model import (
    Claim,
    NewTask,
    Outcome,
    Reaped,
    Renewal,
    Upsert,
    UpsertResult,
    storable_text,
)
from ygg.store.postgres import claims, completions, deps, imports, inserts
from ygg.store.postgres.db import Clock, atomic
from ygg.store.postgres.deps import Conn
from ygg.store.postgres.reads import TaskReads

WAKE = "wake"  # the nudges' text (ygg/nudge.py), sent as NOTIFY payloads


class PostgresStore(TaskReads):
    # --- submitting ----------------------------------------------------------------------
    @atomic
    def enqueue(self, task: NewTask, now_us: int) -> int:
        with self.write() as conn:
            self.notify(WAKE)
            return inserts.insert(conn, task, self.now(conn, now_us))

    @atomic
    def enqueue_many(self, tasks: Sequence[NewTask], now_us: int) -> list[int]:
        """Enqueues every task in one transaction, or none (BatchItemError names the one that
        was refused). Dependencies are checked before anything is inserted, so a refused batch
        uses up no ids. Runs of tasks without dependencies go in with one statement each."""
        ids: list[int] = []
        plain: list[NewTask] = []
        with self.write() as conn:
            now = self.now(conn, now_us)
            inserts.check_parents(conn, tasks)
            for task in tasks:
                if not task.depends_on:
                    plain.append(task)
                    continue
                ids += inserts.insert_plain(conn, plain, now)
                plain = []
                ids.append(inserts.insert(conn, task, now))
            ids += inserts.insert_plain(conn, plain, now)
            if ids:
                self.notify(WAKE)
        return ids

    @atomic
    def upsert_external(
        self,
        items: Sequence[Upsert],
        now_us: int,
        progress: Callable[[int], None] | None = None,
    ) -> UpsertResult:
        return imports.upsert_external(self, items, now_us, progress)

    # --- claiming and outcomes -------------------------------------------------------------
    @atomic
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
        """Up to `limit` of the most urgent ready tasks for `pool`, never past its `slots`
        across every daemon on the queue (see claims.py)."""
        kinds = list(dict.fromkeys(kinds))
        if not kinds or limit < 1:
            return []
        with self.write() as conn:
            now = self.now(conn, now_us)
            return claims.claim(
                conn,
                pool,
                kinds,
                limit,
                slots=slots,
                owner=owner,
                lease_until_us=now + lease_us,
                now_us=now,
            )

    @atomic
    def renew(
        self, owner: int, task_ids: Collection[int], lease_until_us: int, now_us: int
    ) -> Renewal:
        """Extends the leases of `task_ids`, the attempts `owner` really has running; the ids
        it still holds come back in `held`. A row `owner` holds without a live attempt (its
        outcome was never written) is not renewed; once its lease has run out it is taken
        back here, as the reaper would for a dead owner, and reported in `orphans`."""
        with self.write() as conn:
            now = self.now(conn, now_us)
            conn.execute("UPDATE ygg.daemons SET heartbeat_us = %s WHERE id = %s", (now, owner))
            rows = conn.execute(
                "UPDATE ygg.tasks SET lease_expires_us = %s WHERE status = 'running' "
                "AND owner = %s AND id = ANY(%s) RETURNING id",
                (lease_until_us + now - now_us, owner, list(task_ids)),
            ).fetchall()
            lapsed = conn.execute(
                "SELECT id, owner, attempts, max_attempts FROM ygg.tasks "
                "WHERE status = 'running' AND owner = %s AND lease_expires_us < %s "
                "ORDER BY id FOR UPDATE SKIP LOCKED",
                (owner, now),
            ).fetchall()
            orphans = self._take_back(conn, lapsed, now)
            if orphans:
                self.notify(WAKE)
        return Renewal({row[0] for row in rows}, orphans)

    def complete(self, task_id: int, token: int, outcome: Outcome, now_us: int) -> list[str] | None:
        """Records success; returns the kinds of the dependents it promoted, None if stale.
        complete_many() of one: one round trip records it, frees its slot and locks its
        waiting dependents."""
        return self.complete_many([Completion(task_id, token, outcome, now_us)])[0]

    @atomic
    def complete_many(self, items: Sequence[Completion]) -> list[list[str] | None]:
        """complete() for several attempts, in one round trip (completions.py)."""
        items = [_storable(item) for item in items]
        with self.write() as conn:
            finished_us = [self.now(conn, item.now_us) for item in items]
            recorded = completions.complete_many(conn, items, finished_us)
            if recorded.wake_others:
                self.notify(WAKE)  # slots came free, and dependents may be queued
            return recorded.answers

    @atomic
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
        """Records a failed attempt: `queued` again (until `retry_at_us`) while attempts remain
        and the failure is retryable, else `failed`. Returns the new status, None if stale."""
        error = storable_text(error)
        with self.write() as conn:
            now = self.now(conn, now_us)
            row = conn.execute(
                "SELECT attempts, max_attempts FROM ygg.tasks "
                "WHERE id = %s AND token = %s AND status = 'running' FOR UPDATE",
                (task_id, token),
            ).fetchone()
            if row is None:
                return None
            claims.free_slots(conn, [task_id])
            self.notify(WAKE)
            attempts = row[0] - (0 if charge else 1)
            if retry_at_us is not None and attempts < row[1]:
                conn.execute(
                    "UPDATE ygg.tasks SET status = 'queued', attempts = %s, error = %s, "
                    "run_after_us = %s, lease_expires_us = NULL WHERE id = %s",
                    (attempts, error, retry_at_us + now - now_us, task_id),
                )
                return "queued"
            self._finish(conn, task_id, "failed", error, now, attempts=attempts)
            return "failed"

    @staticmethod
    def _finish(
        conn: Conn,
        task_id: int,
        status: str,
        error: str | None,
        now_us: int,
        *,
        attempts: int | None = None,
    ) -> None:
        conn.execute(
            "UPDATE ygg.tasks SET status = %s, error = %s, finished_us = %s, "
            "lease_expires_us = NULL, attempts = coalesce(%s, attempts) WHERE id = %s",
            (status, error, now_us, attempts, task_id),
        )
        deps.block_downstream(conn, task_id, status, now_us)

    @atomic
    def reap(
        self, now_us: int, alive_owners: Collection[int], dead_owners: Collection[int] = ()
    ) -> list[Reaped]:
        """Returns tasks whose owner's lease expired to `queued` (or `failed`, once they have
        been interrupted `max_attempts` times). Owners known to be alive keep their tasks;
        those known to be dead lose theirs at once, without waiting for the lease, and are
        forgotten. A row another transaction holds (its outcome being written) is skipped."""
        dead, alive = list(dead_owners), set(alive_owners)
        with self.write() as conn:
            now = self.now(conn, now_us)
            rows = conn.execute(
                "SELECT id, owner, attempts, max_attempts FROM ygg.tasks WHERE status = 'running' "
                "AND (lease_expires_us < %s OR owner = ANY(%s)) ORDER BY id FOR UPDATE SKIP LOCKED",
                (now, dead),
            ).fetchall()
            reaped = self._take_back(conn, [row for row in rows if row[1] not in alive], now)
            if reaped:
                self.notify(WAKE)
            if dead:
                self.forget_daemons(dead)
            return reaped

    def _take_back(self, conn: Conn, rows: Sequence[Sequence[Any]], now_us: int) -> list[Reaped]:
        """Interrupted attempts (id, owner, attempts, max_attempts), locked by the caller:
        queued again, or failed once they were interrupted max_attempts times."""
        changed: list[Reaped] = []
        claims.free_slots(conn, [row[0] for row in rows])
        for task_id, _owner, attempts, max_attempts in rows:
            if attempts >= max_attempts:
                reason = f"interrupted {attempts} times: the dispatcher running it stopped"
                self._finish(conn, task_id, "failed", reason, now_us)
                changed.append(Reaped(task_id, "failed", attempts))
            else:
                conn.execute(
                    "UPDATE ygg.tasks SET status = 'queued', lease_expires_us = NULL, "
                    "error = 'interrupted: the dispatcher running it stopped' WHERE id = %s",
                    (task_id,),
                )
                changed.append(Reaped(task_id, "queued", attempts))
        return changed

    @atomic
    def release(self, task_id: int, token: int, *, block: bool, now_us: int) -> bool:
        """Gives back a task interrupted by a graceful shutdown, without charging the attempt."""
        with self.write() as conn:
            now = self.now(conn, now_us)
            row = conn.execute(
                "UPDATE ygg.tasks SET status = 'queued', attempts = attempts - 1, "
                "lease_expires_us = NULL WHERE id = %s AND token = %s AND status = 'running' "
                "RETURNING id",
                (task_id, token),
            ).fetchone()
            if row is None:
                return False
            claims.free_slots(conn, [task_id])
            self.notify(WAKE)
            if block:
                self._finish(conn, task_id, "blocked", "interrupted by a shutdown", now)
            return True

    # --- operator actions ------------------------------------------------------------------
    @atomic
    def cancel(self, task_id: int, now_us: int) -> tuple[str, int | None]:
        """Cancels a task that has not finished; returns its previous status and owner."""
        with self.write() as conn:
            now = self.now(conn, now_us)
            row = conn.execute(
                "SELECT status, owner FROM ygg.tasks WHERE id = %s FOR UPDATE", (task_id,)
            ).fetchone()
            if row is None:
                raise TaskNotFound(f"No task {task_id}.")
            if row[0] not in ("waiting", "queued", "running"):
                raise InvalidInput(
                    f"Task {task_id} is already {row[0]}; there is nothing to cancel."
                )
            if row[0] == "running":
                claims.free_slots(conn, [task_id])
                self.notify(f"cancel {task_id}")  # its owner stops the attempt (a hint)
                self.notify(WAKE)
            self._finish(conn, task_id, "cancelled", None, now)
            return row[0], row[1] if row[0] == "running" else None

    @atomic
    def retry(self, task_id: int, now_us: int) -> str:
        """Puts a failed, blocked or cancelled task back in line with a fresh attempt budget."""
        with self.write() as conn:
            row = conn.execute(
                "SELECT status, ARRAY(SELECT depends_on FROM ygg.deps WHERE task_id = %s) "
                "FROM ygg.tasks WHERE id = %s FOR UPDATE",
                (task_id, task_id),
            ).fetchone()
            if row is None:
                raise TaskNotFound(f"No task {task_id}.")
            if row[0] not in ("failed", "blocked", "cancelled"):
                raise InvalidInput(
                    f"Task {task_id} is {row[0]}; only failed, blocked or cancelled tasks can be "
                    "retried."
                )
            status = deps.unfinished_status(conn, tuple(row[1]))
            if status == "blocked":
                raise InvalidInput(
                    f"Task {task_id} depends on a task that failed or was cancelled; retry that "
                    "one first."
                )
            conn.execute(
                "UPDATE ygg.tasks SET status = %s, attempts = 0, error = NULL, result = NULL, "
                "finished_us = NULL, started_us = NULL, run_after_us = NULL, pool = NULL "
                "WHERE id = %s",
                (status, task_id),
            )
            deps.unblock_downstream(conn, task_id)
            self.notify(WAKE)
            return status


def open_postgres(
    url: str,
    *,
    synchronous: str = "full",
    busy_timeout_s: float = 30.0,
    clock: Clock = "database",
) -> PostgresStore:
    """The `postgresql` engine's opener (see ygg.store.ENGINES). `synchronous` and
    `busy_timeout_s` are the SQLite engine's knobs: the server's own settings govern here.
    `clock="caller"` takes every time from the caller's `now_us` (the contract suite's
    explicit times); "database" puts leases and every recorded time on the server's clock."""
    del synchronous, busy_timeout_s
    return PostgresStore(url, clock=clock)


def _storable(item: Completion) -> Completion:
    outcome = item.outcome.storable()
    return item if outcome is item.outcome else item._replace(outcome=outcome)
