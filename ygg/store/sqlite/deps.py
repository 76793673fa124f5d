"""Dependency bookkeeping, run inside the transaction that changes a task's status."""

from __future__ import annotations

import sqlite3

_DOWNSTREAM = """
    WITH RECURSIVE down(id) AS (
        SELECT task_id FROM deps WHERE depends_on = ?
        UNION SELECT deps.task_id FROM deps JOIN down ON deps.depends_on = down.id
    )
"""


def promote(conn: sqlite3.Connection, finished_id: int) -> list[str]:
    """Queues the dependents whose last unfinished dependency was `finished_id`; their kinds."""
    rows = conn.execute(
        """
        UPDATE tasks SET status = 'queued'
        WHERE status = 'waiting'
          AND id IN (SELECT task_id FROM deps WHERE depends_on = ?)
          AND NOT EXISTS (
              SELECT 1 FROM deps JOIN tasks AS dep ON dep.id = deps.depends_on
              WHERE deps.task_id = tasks.id AND dep.status != 'done')
        RETURNING kind
        """,
        (finished_id,),
    ).fetchall()
    return [row[0] for row in rows]


def block_downstream(conn: sqlite3.Connection, task_id: int, status: str, now_us: int) -> int:
    """Blocks every waiting task that (transitively) depends on a task that will not finish."""
    cursor = conn.execute(
        _DOWNSTREAM
        + """
        UPDATE tasks SET status = 'blocked', finished_us = ?,
            error = 'dependency ' || ? || ' is ' || ?
        WHERE status = 'waiting' AND id IN (SELECT id FROM down)
        """,
        (task_id, now_us, task_id, status),
    )
    return cursor.rowcount


def unblock_downstream(conn: sqlite3.Connection, task_id: int) -> int:
    """After a retry: the tasks blocked through `task_id` wait again for their dependencies.

    A task downstream of a retried one never ran, so it can only have been blocked by the
    chain. Each task unblocked re-examines its own dependents, which reaches the fixpoint even
    when one task depends on several members of the chain.
    """
    frontier, unblocked = [task_id], 0
    while frontier:
        parent = frontier.pop()
        for (child,) in conn.execute(
            """
            SELECT task_id FROM deps JOIN tasks ON tasks.id = deps.task_id
            WHERE deps.depends_on = ? AND tasks.status = 'blocked'
              AND NOT EXISTS (
                  SELECT 1 FROM deps AS d JOIN tasks AS dep ON dep.id = d.depends_on
                  WHERE d.task_id = tasks.id AND dep.status IN ('failed', 'cancelled', 'blocked'))
            """,
            (parent,),
        ).fetchall():
            conn.execute(
                "UPDATE tasks SET status = 'waiting', finished_us = NULL, error = NULL "
                "WHERE id = ?",
                (child,),
            )
            unblocked += 1
            frontier.append(child)
    return unblocked


def unfinished_status(conn: sqlite3.Connection, depends_on: tuple[int, ...]) -> str:
    """The status a new task with these dependencies starts in."""
    if not depends_on:
        return "queued"
    marks = ",".join("?" * len(depends_on))
    statuses = {
        row[0]
        for row in conn.execute(f"SELECT status FROM tasks WHERE id IN ({marks})", depends_on)
    }
    if statuses & {"failed", "cancelled", "blocked"}:
        return "blocked"
    return "queued" if statuses <= {"done"} else "waiting"
