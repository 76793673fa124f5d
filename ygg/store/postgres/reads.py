"""Reading the PostgreSQL queue: tasks, counts, loads and the heads of each kind's line.

A task's dependencies come with it in the same statement (an array), not one query per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ygg.errors import TaskNotFound
from ygg.store.model import Head, Task, task_from_row
from ygg.store.postgres.deps import Conn
from ygg.store.postgres.limits import LimitRegistry

TASK_COLUMNS = (
    "id, title, kind, priority, status, pool, attempts, max_attempts, params, created_us, "
    "started_us, finished_us, result, error, external_id, prompt, timeout_s, tokens_in, "
    "tokens_out, run_after_us, "
    "ARRAY(SELECT depends_on FROM ygg.deps WHERE deps.task_id = tasks.id ORDER BY 1), "
    "first_token_us, generation_us"
)


def task_of(row: Sequence[Any]) -> Task:
    return task_from_row(row, row[20])


class TaskReads(LimitRegistry):
    def get(self, task_id: int) -> Task:
        with self.read() as conn:
            row = conn.execute(
                f"SELECT {TASK_COLUMNS} FROM ygg.tasks WHERE id = %s", (task_id,)
            ).fetchone()
        if row is None:
            raise TaskNotFound(f"No task {task_id}.")
        return task_of(row)

    def list_tasks(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Task]:
        where, args = [], []
        if status:
            where.append("status = %s")
            args.append(status)
        if kind:
            where.append("kind = %s")
            args.append(kind)
        sql = f"SELECT {TASK_COLUMNS} FROM ygg.tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY priority, id LIMIT %s", [*args, limit]).fetchall()
        return [task_of(row) for row in rows]

    def counts(self) -> dict[str, int]:
        with self.read() as conn:
            rows = conn.execute("SELECT status, count(*) FROM ygg.tasks GROUP BY status")
            return dict(rows.fetchall())

    def pool_load(self, pools: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, int]]:
        """Per pool: tasks running in it (any owner) and queued tasks of the kinds it serves
        (including those waiting out a retry backoff)."""
        with self.read() as conn:
            running = dict(
                conn.execute(
                    "SELECT pool, count(*) FROM ygg.tasks WHERE status = 'running' GROUP BY pool"
                ).fetchall()
            )
            queued = dict(
                conn.execute(
                    "SELECT kind, count(*) FROM ygg.tasks WHERE status = 'queued' GROUP BY kind"
                ).fetchall()
            )
        return {
            name: (running.get(name, 0), sum(queued.get(kind, 0) for kind in kinds))
            for name, kinds in pools.items()
        }

    def has_pending(self, kinds: Sequence[str]) -> bool:
        """Whether anything is running, or queued for one of `kinds` (now or after a backoff)."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM ygg.tasks WHERE status = 'running') OR EXISTS "
                "(SELECT 1 FROM ygg.tasks WHERE status = 'queued' AND kind = ANY(%s))",
                (list(kinds),),
            ).fetchone()
        return bool(row and row[0])

    def queue_heads(self) -> list[Head]:
        with self.read() as conn:
            return queue_heads(conn)


def queue_heads(conn: Conn) -> list[Head]:
    """Per kind: the task a pool would claim next, or (no queued one) the oldest waiting."""
    heads: list[Head] = []
    queued = conn.execute(
        "SELECT DISTINCT ON (kind) kind, id, priority, created_us, run_after_us FROM ygg.tasks "
        "WHERE status = 'queued' ORDER BY kind, priority, id"
    ).fetchall()
    for kind, task_id, priority, created_us, run_after_us in queued:
        heads.append(Head(kind, task_id, "queued", priority, created_us, run_after_us))
    kinds = {head.kind for head in heads}
    waiting = conn.execute(
        "SELECT DISTINCT ON (kind) kind, id, priority, created_us, ARRAY("
        "  SELECT deps.depends_on FROM ygg.deps JOIN ygg.tasks AS dep ON dep.id = deps.depends_on"
        "  WHERE deps.task_id = tasks.id AND dep.status <> 'done' ORDER BY 1) "
        "FROM ygg.tasks WHERE status = 'waiting' ORDER BY kind, id"
    ).fetchall()
    for kind, task_id, priority, created_us, blockers in waiting:
        if kind not in kinds:  # the queued head says more about the kind's line
            heads.append(
                Head(kind, task_id, "waiting", priority, created_us, None, tuple(blockers))
            )
    return sorted(heads, key=lambda h: h.kind)
