"""The SQLite store: every domain operation is one write transaction (or joins a batch)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence

from ygg.errors import BatchItemError, InvalidInput, TaskNotFound
from ygg.store.completion import complete_each
from ygg.store.model import (
    Claim,
    NewTask,
    Outcome,
    Reaped,
    Renewal,
    Upsert,
    UpsertResult,
    decode_json,
    encode_json,
    storable_text,
    storable_us,
)
from ygg.store.sqlite import deps, imports
from ygg.store.sqlite.db import db_path, marks
from ygg.store.sqlite.reads import TaskReads

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from typing import Any


class SQLiteStore(TaskReads):
    # --- submitting ----------------------------------------------------------------------
    def enqueue(self, task: NewTask, now_us: int) -> int:
        with self.write() as conn:
            depends_on = tuple(sorted(set(task.depends_on)))
            self._check_exist(conn, depends_on)
            status = deps.unfinished_status(conn, depends_on)
            error = "a dependency failed or was cancelled" if status == "blocked" else None
            task_id: int = conn.execute(
                "INSERT INTO tasks (title, kind, priority, status, prompt, params, max_attempts, "
                "timeout_s, created_us, finished_us, error, external_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    task.title,
                    task.kind,
                    task.priority,
                    status,
                    task.prompt,
                    encode_json(task.params),
                    task.max_attempts,
                    task.timeout_s,
                    now_us,
                    now_us if status == "blocked" else None,
                    error,
                    task.external_id,
                ),
            ).fetchone()[0]
            conn.executemany(
                "INSERT INTO deps (task_id, depends_on) VALUES (?, ?)",
                [(task_id, parent) for parent in depends_on],
            )
            return task_id

    def enqueue_many(self, tasks: Sequence[NewTask], now_us: int) -> list[int]:
        """Enqueues every task in one transaction, or none (BatchItemError names the one that
        was refused). Runs of tasks without dependencies go in with one statement each."""
        ids: list[int] = []
        plain: list[NewTask] = []
        with self.write() as conn:
            for index, task in enumerate(tasks):
                if not task.depends_on:
                    plain.append(task)
                    continue
                ids += self._insert_plain(conn, plain, now_us)
                plain = []
                try:
                    ids.append(self.enqueue(task, now_us))
                except InvalidInput as exc:
                    raise BatchItemError(index, exc) from None
            ids += self._insert_plain(conn, plain, now_us)
        return ids

    @staticmethod
    def _insert_plain(conn: sqlite3.Connection, tasks: list[NewTask], now_us: int) -> list[int]:
        if not tasks:
            return []
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'").fetchone()
        first = (row[0] if row else 0) + 1
        conn.executemany(
            "INSERT INTO tasks (title, kind, priority, status, prompt, params, max_attempts, "
            "timeout_s, created_us, external_id) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
            [
                (
                    t.title,
                    t.kind,
                    t.priority,
                    t.prompt,
                    encode_json(t.params),
                    t.max_attempts,
                    t.timeout_s,
                    now_us,
                    t.external_id,
                )
                for t in tasks
            ],
        )
        # AUTOINCREMENT under our write lock: the new ids are the next ones, in order.
        return list(range(first, first + len(tasks)))

    @staticmethod
    def _check_exist(conn: sqlite3.Connection, ids: tuple[int, ...]) -> None:
        if not ids:
            return
        found = {
            row[0] for row in conn.execute(f"SELECT id FROM tasks WHERE id IN ({marks(ids)})", ids)
        }
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise TaskNotFound(f"Cannot depend on task {', '.join(missing)}: no such task.")

    # --- claiming and outcomes -------------------------------------------------------------
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
        """Up to `limit` of the most urgent ready tasks for `pool`, never past its stored
        limit (`slots` only while it has none), read under the write lock with the count."""
        kinds = list(dict.fromkeys(kinds))  # a kind listed twice must not take two arms
        if not kinds or limit < 1:
            return []
        with self.write() as conn:
            running, stored = conn.execute(
                "SELECT (SELECT count(*) FROM tasks INDEXED BY tasks_running "
                "WHERE status = 'running' AND pool = ?1), "
                "(SELECT slot_limit FROM pool_limits WHERE pool = ?1)",
                (pool,),
            ).fetchone()
            if stored is None:
                self.first_limit(conn, pool, slots, owner, now_us)
                stored = slots
            limit = min(limit, stored - running)
            if limit < 1:
                return []
            ids = self._ready_ids(conn, kinds, limit, now_us)
            if not ids:
                return []
            rows = conn.execute(
                f"UPDATE tasks SET status = 'running', pool = ?, owner = ?, "
                f"attempts = attempts + 1, token = token + 1, lease_expires_us = ?, "
                f"started_us = ?, run_after_us = NULL WHERE id IN ({marks(ids)}) "
                f"RETURNING id, token, kind, priority, title, prompt, params, attempts, "
                f"max_attempts, timeout_s, created_us",
                [pool, owner, now_us + lease_us, now_us, *ids],
            ).fetchall()
        claims = [
            Claim(r[0], r[1], r[2], r[3], r[4], r[5], decode_json(r[6]), r[7], r[8], r[9], r[10])
            for r in rows
        ]
        claims.sort(key=lambda c: (c.priority, c.task_id))
        return claims

    @staticmethod
    def _ready_ids(
        conn: sqlite3.Connection, kinds: list[str], limit: int, now_us: int
    ) -> list[int]:
        """The ids of the `limit` most urgent ready tasks of `kinds`, most urgent first.

        One index range per kind, each already in (priority, id) order: the cost does not grow
        with the depth of the queue. INDEXED BY because without statistics SQLite prefers the
        status index and sorts every queued task of the kind."""
        arm = (
            "SELECT * FROM (SELECT id, priority FROM tasks INDEXED BY tasks_ready WHERE status = "
            "'queued' AND kind = ? AND (run_after_us IS NULL OR run_after_us <= ?) "
            "ORDER BY priority, id LIMIT ?)"
        )
        rows = conn.execute(
            " UNION ALL ".join([arm] * len(kinds)) + " ORDER BY priority, id LIMIT ?",
            [v for kind in kinds for v in (kind, now_us, limit)] + [limit],
        )
        return [row[0] for row in rows]

    def renew(
        self, owner: int, task_ids: Collection[int], lease_until_us: int, now_us: int
    ) -> Renewal:
        """Extends the leases of `task_ids`, the attempts `owner` really has running; the ids
        it still holds come back in `held`. A row `owner` holds without a live attempt (its
        outcome was never written) is not renewed; once its lease has run out it is taken
        back here, as the reaper would for a dead owner, and reported in `orphans`."""
        ids = list(task_ids)
        with self.write() as conn:
            conn.execute("UPDATE daemons SET heartbeat_us = ? WHERE id = ?", (now_us, owner))
            rows = conn.execute(
                "UPDATE tasks SET lease_expires_us = ? WHERE status = 'running' AND owner = ? "
                f"AND id IN ({marks(ids)}) RETURNING id",
                (lease_until_us, owner, *ids),
            ).fetchall()
            lapsed = conn.execute(
                "SELECT id, owner, attempts, max_attempts FROM tasks INDEXED BY tasks_running "
                "WHERE status = 'running' AND owner = ? AND lease_expires_us < ?",
                (owner, now_us),
            ).fetchall()
            orphans = self._take_back(conn, lapsed, now_us)
        return Renewal({row[0] for row in rows}, orphans)

    def complete(self, task_id: int, token: int, outcome: Outcome, now_us: int) -> list[str] | None:
        """Records success; returns the kinds of the dependents it promoted, None if stale."""
        outcome = outcome.storable()
        with self.write() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET status = 'done', result = ?, error = NULL, tokens_in = ?, "
                "tokens_out = ?, first_token_us = ?, generation_us = ?, finished_us = ?, "
                "lease_expires_us = NULL WHERE id = ? AND token = ? AND status = 'running'",
                (
                    outcome.result,
                    outcome.tokens_in,
                    outcome.tokens_out,
                    storable_us(outcome.first_token_s),
                    storable_us(outcome.generation_s),
                    now_us,
                    task_id,
                    token,
                ),
            )
            if cursor.rowcount != 1:
                return None
            return deps.promote(conn, task_id)

    complete_many = complete_each  # in one transaction: SQLite has no round trips to save

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
            row = conn.execute(
                "SELECT attempts, max_attempts FROM tasks "
                "WHERE id = ? AND token = ? AND status = 'running'",
                (task_id, token),
            ).fetchone()
            if row is None:
                return None
            attempts = row[0] - (0 if charge else 1)
            if retry_at_us is not None and attempts < row[1]:
                conn.execute(
                    "UPDATE tasks SET status = 'queued', attempts = ?, error = ?, "
                    "run_after_us = ?, lease_expires_us = NULL WHERE id = ?",
                    (attempts, error, retry_at_us, task_id),
                )
                return "queued"
            self._finish(conn, task_id, "failed", error, now_us, attempts=attempts)
            return "failed"

    def _finish(
        self,
        conn: sqlite3.Connection,
        task_id: int,
        status: str,
        error: str | None,
        now_us: int,
        *,
        attempts: int | None = None,
    ) -> None:
        conn.execute(
            "UPDATE tasks SET status = ?, error = ?, finished_us = ?, lease_expires_us = NULL, "
            "attempts = coalesce(?, attempts) WHERE id = ?",
            (status, error, now_us, attempts, task_id),
        )
        deps.block_downstream(conn, task_id, status, now_us)

    def reap(
        self, now_us: int, alive_owners: Collection[int], dead_owners: Collection[int] = ()
    ) -> list[Reaped]:
        """Returns tasks whose owner's lease expired to `queued` (or `failed`, once they have
        been interrupted `max_attempts` times). Owners known to be alive keep their tasks;
        those known to be dead lose theirs at once, without waiting for the lease, and are
        forgotten."""
        dead, alive = list(dead_owners), set(alive_owners)
        with self.write() as conn:
            rows = conn.execute(
                "SELECT id, owner, attempts, max_attempts FROM tasks INDEXED BY tasks_running "
                f"WHERE status = 'running' AND (lease_expires_us < ? OR owner IN ({marks(dead)}))",
                (now_us, *dead),
            ).fetchall()
            reaped = self._take_back(conn, [row for row in rows if row[1] not in alive], now_us)
            if dead:
                self.forget_daemons(dead)
            return reaped

    def upsert_external(
        self,
        items: Sequence[Upsert],
        now_us: int,
        progress: Callable[[int], None] | None = None,
    ) -> UpsertResult:
        return imports.upsert_external(self, items, now_us, progress)

    def _take_back(
        self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]], now_us: int
    ) -> list[Reaped]:
        """Interrupted attempts (id, owner, attempts, max_attempts): queued again, or failed
        once they were interrupted max_attempts times."""
        changed: list[Reaped] = []
        for task_id, _owner, attempts, max_attempts in rows:
            if attempts >= max_attempts:
                reason = f"interrupted {attempts} times: the dispatcher running it stopped"
                self._finish(conn, task_id, "failed", reason, now_us)
                changed.append(Reaped(task_id, "failed", attempts))
            else:
                conn.execute(
                    "UPDATE tasks SET status = 'queued', lease_expires_us = NULL, "
                    "error = 'interrupted: the dispatcher running it stopped' WHERE id = ?",
                    (task_id,),
                )
                changed.append(Reaped(task_id, "queued", attempts))
        return changed

    def release(self, task_id: int, token: int, *, block: bool, now_us: int) -> bool:
        """Gives back a task interrupted by a graceful shutdown, without charging the attempt."""
        with self.write() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET status = 'queued', attempts = attempts - 1, "
                "lease_expires_us = NULL WHERE id = ? AND token = ? AND status = 'running'",
                (task_id, token),
            )
            if cursor.rowcount and block:
                self._finish(conn, task_id, "blocked", "interrupted by a shutdown", now_us)
            return cursor.rowcount == 1

    # --- operator actions ------------------------------------------------------------------
    def cancel(self, task_id: int, now_us: int) -> tuple[str, int | None]:
        """Cancels a task that has not finished; returns its previous status and owner."""
        with self.write() as conn:
            row = conn.execute(
                "SELECT status, owner FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
            if row is None:
                raise TaskNotFound(f"No task {task_id}.")
            if row[0] not in ("waiting", "queued", "running"):
                raise InvalidInput(
                    f"Task {task_id} is already {row[0]}; there is nothing to cancel."
                )
            self._finish(conn, task_id, "cancelled", None, now_us)
            return row[0], row[1] if row[0] == "running" else None

    def retry(self, task_id: int, now_us: int) -> str:
        """Puts a failed, blocked or cancelled task back in line with a fresh attempt budget."""
        with self.write() as conn:
            row = conn.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise TaskNotFound(f"No task {task_id}.")
            if row[0] not in ("failed", "blocked", "cancelled"):
                raise InvalidInput(
                    f"Task {task_id} is {row[0]}; only failed, blocked or cancelled tasks can be "
                    "retried."
                )
            parents = tuple(
                r[0]
                for r in conn.execute("SELECT depends_on FROM deps WHERE task_id = ?", (task_id,))
            )
            status = deps.unfinished_status(conn, parents)
            if status == "blocked":
                raise InvalidInput(
                    f"Task {task_id} depends on a task that failed or was cancelled; retry that "
                    "one first."
                )
            conn.execute(
                "UPDATE tasks SET status = ?, attempts = 0, error = NULL, result = NULL, "
                "finished_us = NULL, started_us = NULL, run_after_us = NULL, pool = NULL "
                "WHERE id = ?",
                (status, task_id),
            )
            deps.unblock_downstream(conn, task_id)
            return status


def open_sqlite(
    url: str, *, synchronous: str = "full", busy_timeout_s: float = 30.0, clock: str = "caller"
) -> SQLiteStore:
    """The `sqlite` engine's opener (see ygg.store.ENGINES). One machine, one clock: times
    are always the caller's."""
    if clock != "caller":
        raise ValueError(f"the SQLite engine keeps the caller's clock only, not {clock!r}")
    return SQLiteStore(db_path(url), synchronous=synchronous, busy_timeout_s=busy_timeout_s)
