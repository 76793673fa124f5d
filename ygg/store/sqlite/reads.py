"""Reading the SQLite queue: tasks, counts, loads and the heads of each kind's line. Every
method runs outside any write transaction (`@reads`), so a scan never holds the write lock."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ygg.errors import TaskNotFound
from ygg.store.model import Head, Task, task_from_row
from ygg.store.sqlite import heads
from ygg.store.sqlite.db import marks, reads
from ygg.store.sqlite.limits import LimitRegistry

# The task columns (ygg.store.model.task_from_row), then its dependencies as a JSON array in
# the same statement, not one more query per task.
TASK_COLUMNS = (
    "id, title, kind, priority, status, pool, attempts, max_attempts, params, created_us, "
    "started_us, finished_us, result, error, external_id, prompt, timeout_s, tokens_in, "
    "tokens_out, run_after_us, (SELECT json_group_array(depends_on) FROM "
    "(SELECT depends_on FROM deps WHERE deps.task_id = tasks.id ORDER BY depends_on)), "
    "first_token_us, generation_us"
)


class TaskReads(LimitRegistry):
    # --- reading ---------------------------------------------------------------------------
    @reads
    def get(self, task_id: int) -> Task:
        row = self.conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        if row is None:
            raise TaskNotFound(f"No task {task_id}.")
        return task_from_row(row, json.loads(row[20]))

    @reads
    def list_tasks(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Task]:
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        sql = f"SELECT {TASK_COLUMNS} FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.conn.execute(sql + " ORDER BY priority, id LIMIT ?", [*args, limit]).fetchall()
        return [task_from_row(row, json.loads(row[20])) for row in rows]

    @reads
    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) FROM tasks GROUP BY status")
        return dict(rows.fetchall())

    @reads
    def pool_load(self, pools: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, int]]:
        """Per pool: tasks running in it (any owner) and queued tasks of the kinds it serves
        (including those waiting out a retry backoff)."""
        # The partial indexes cover these counts; left to itself SQLite picks the status index
        # and reads every queued row from the table (300 ms at 100,000 queued, not 10).
        running = dict(
            self.conn.execute(
                "SELECT pool, count(*) FROM tasks INDEXED BY tasks_running "
                "WHERE status = 'running' GROUP BY pool"
            ).fetchall()
        )
        queued = dict(
            self.conn.execute(
                "SELECT kind, count(*) FROM tasks INDEXED BY tasks_ready "
                "WHERE status = 'queued' GROUP BY kind"
            ).fetchall()
        )
        return {
            name: (running.get(name, 0), sum(queued.get(kind, 0) for kind in kinds))
            for name, kinds in pools.items()
        }

    @reads
    def has_pending(self, kinds: Sequence[str]) -> bool:
        """Whether anything is running, or queued for one of `kinds` (now or after a backoff)."""
        if self.conn.execute("SELECT 1 FROM tasks WHERE status = 'running' LIMIT 1").fetchone():
            return True
        if not kinds:
            return False
        return (
            self.conn.execute(
                f"SELECT 1 FROM tasks WHERE status = 'queued' AND kind IN ({marks(kinds)}) LIMIT 1",
                list(kinds),
            ).fetchone()
            is not None
        )

    @reads
    def queue_heads(self) -> list[Head]:
        return heads.queue_heads(self)
