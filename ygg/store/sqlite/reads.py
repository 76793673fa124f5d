"""Reading the SQLite queue: tasks, counts, loads and the heads of each kind's line. Every
method runs outside any write transaction (`@reads`), so a scan never holds the write lock."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ygg.errors import TaskNotFound
from ygg.store.model import Head, Status, Task
from ygg.store.sqlite import heads
from ygg.store.sqlite.daemons import DaemonRegistry
from ygg.store.sqlite.db import marks, reads

TASK_COLUMNS = (
    "id, title, kind, priority, status, pool, attempts, max_attempts, params, created_us, "
    "started_us, finished_us, result, error, external_id, prompt, timeout_s, tokens_in, "
    "tokens_out, run_after_us"
)


class TaskReads(DaemonRegistry):
    # --- reading ---------------------------------------------------------------------------
    @reads
    def get(self, task_id: int) -> Task:
        row = self.conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        if row is None:
            raise TaskNotFound(f"No task {task_id}.")
        return self._task(row)

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
        return [self._task(row) for row in rows]

    def _task(self, row: Sequence[Any]) -> Task:
        parents = tuple(
            r[0]
            for r in self.conn.execute(
                "SELECT depends_on FROM deps WHERE task_id = ? ORDER BY depends_on", (row[0],)
            )
        )
        return Task(
            id=row[0],
            title=row[1],
            kind=row[2],
            priority=row[3],
            status=Status(row[4]),
            pool=row[5],
            attempts=row[6],
            max_attempts=row[7],
            depends_on=parents,
            params=json.loads(row[8]),
            created_us=row[9],
            started_us=row[10],
            finished_us=row[11],
            result=row[12],
            error=row[13],
            external_id=row[14],
            prompt=row[15],
            timeout_s=row[16],
            tokens_in=row[17],
            tokens_out=row[18],
            run_after_us=row[19],
        )

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
