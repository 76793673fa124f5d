"""Dependency bookkeeping, run inside the transaction that changes a task's status.

Unlike SQLite, PostgreSQL runs writers side by side, each statement under READ COMMITTED
seeing what was committed when it began. Two rules keep the dependency graph right anyway:
- a task's parents are read `FOR SHARE` (enqueue, retry, an import changing dependencies), so
  a parent cannot change status while a child is being attached to it, and a child attached
  meanwhile is seen by the parent's next statement;
- the dependents a finished task may promote are looked up and locked (`FOR UPDATE`, in id
  order) by a statement after the one that finished it (`ygg.record_outcomes`, functions.py),
  so a child attached while that one waited for the parent's row is seen; and two parents
  finishing at once cannot each think the other unfinished (write skew): the one that locks
  second re-reads in a statement of its own, after the first committed.
Blocking walks the graph one level per statement for the same reason: each level is read
after the level above it was locked.
"""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def promote_locked(conn: Conn, children: list[int]) -> list[str]:
    """Queues those of `children` (already locked) whose dependencies are all done; their
    kinds. A statement of its own: it sees what was committed while the locks were awaited."""
    if not children:
        return []
    rows = conn.execute(
        """
        UPDATE ygg.tasks SET status = 'queued'
        WHERE status = 'waiting' AND id = ANY(%s)
          AND NOT EXISTS (
              SELECT 1 FROM ygg.deps JOIN ygg.tasks AS dep ON dep.id = deps.depends_on
              WHERE deps.task_id = tasks.id AND dep.status <> 'done')
        RETURNING id, kind
        """,
        (children,),
    ).fetchall()
    return [kind for _, kind in sorted(rows)]


def block_downstream(conn: Conn, task_id: int, status: str, now_us: int) -> int:
    """Blocks every waiting task that (transitively) depends on a task that will not finish."""
    seen: set[int] = {task_id}
    frontier, blocked = [task_id], 0
    while frontier:
        rows = conn.execute(
            "SELECT DISTINCT task_id FROM ygg.deps WHERE depends_on = ANY(%s)", (frontier,)
        ).fetchall()
        frontier = sorted({row[0] for row in rows} - seen)
        if not frontier:
            break
        seen.update(frontier)
        cursor = conn.execute(
            "UPDATE ygg.tasks SET status = 'blocked', finished_us = %s, "
            "error = 'dependency ' || %s || ' is ' || %s "
            "WHERE status = 'waiting' AND id = ANY(%s)",
            (now_us, str(task_id), status, frontier),
        )
        blocked += cursor.rowcount
    return blocked


def unblock_downstream(conn: Conn, task_id: int) -> int:
    """After a retry: the tasks blocked through `task_id` wait again for their dependencies.

    A task downstream of a retried one never ran, so it can only have been blocked by the
    chain. Each task unblocked re-examines its own dependents, which reaches the fixpoint even
    when one task depends on several members of the chain.
    """
    frontier, unblocked = [task_id], 0
    while frontier:
        parent = frontier.pop()
        rows = conn.execute(
            """
            UPDATE ygg.tasks SET status = 'waiting', finished_us = NULL, error = NULL
            WHERE status = 'blocked'
              AND id IN (SELECT task_id FROM ygg.deps WHERE depends_on = %s)
              AND NOT EXISTS (
                  SELECT 1 FROM ygg.deps AS d JOIN ygg.tasks AS dep ON dep.id = d.depends_on
                  WHERE d.task_id = tasks.id
                    AND dep.status IN ('failed', 'cancelled', 'blocked'))
            RETURNING id
            """,
            (parent,),
        ).fetchall()
        unblocked += len(rows)
        frontier.extend(row[0] for row in rows)
    return unblocked


def parent_statuses(conn: Conn, depends_on: tuple[int, ...]) -> dict[int, str]:
    """The statuses of a task's parents, locked FOR SHARE until the transaction ends."""
    rows = conn.execute(
        "SELECT id, status FROM ygg.tasks WHERE id = ANY(%s) ORDER BY id FOR SHARE",
        (list(depends_on),),
    ).fetchall()
    return dict(rows)


def unfinished_status(conn: Conn, depends_on: tuple[int, ...]) -> str:
    """The status a new task with these dependencies starts in."""
    if not depends_on:
        return "queued"
    return status_for(set(parent_statuses(conn, depends_on).values()))


def status_for(statuses: set[str]) -> str:
    if statuses & {"failed", "cancelled", "blocked"}:
        return "blocked"
    return "queued" if statuses <= {"done"} else "waiting"
