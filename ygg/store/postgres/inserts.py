"""Inserting tasks: one with its dependencies, or a run of plain ones in one statement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ygg.errors import BatchItemError, TaskNotFound
from ygg.store.model import NewTask
from ygg.store.postgres import deps
from ygg.store.postgres.deps import Conn

_INSERT = (
    "INSERT INTO ygg.tasks (title, kind, priority, status, prompt, params, max_attempts, "
    "timeout_s, created_us, finished_us, error, external_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
_INSERT_PLAIN = """
INSERT INTO ygg.tasks (title, kind, priority, status, prompt, params, max_attempts, timeout_s,
    created_us, external_id)
SELECT title, kind, priority, 'queued', prompt, params, max_attempts, timeout_s, %s, external_id
FROM unnest(%s::text[], %s::text[], %s::smallint[], %s::text[], %s::text[], %s::integer[],
    %s::double precision[], %s::text[])
    WITH ORDINALITY AS v(title, kind, priority, prompt, params, max_attempts, timeout_s,
        external_id, ord)
ORDER BY ord
RETURNING id
"""


def insert(conn: Conn, task: NewTask, now_us: int) -> int:
    depends_on = tuple(sorted(set(task.depends_on)))
    parents = deps.parent_statuses(conn, depends_on) if depends_on else {}
    missing = [str(i) for i in depends_on if i not in parents]
    if missing:
        raise TaskNotFound(f"Cannot depend on task {', '.join(missing)}: no such task.")
    status = deps.status_for(set(parents.values())) if depends_on else "queued"
    error = "a dependency failed or was cancelled" if status == "blocked" else None
    row = conn.execute(
        _INSERT,
        (
            task.title,
            task.kind,
            task.priority,
            status,
            task.prompt,
            json.dumps(task.params),
            task.max_attempts,
            task.timeout_s,
            now_us,
            now_us if status == "blocked" else None,
            error,
            task.external_id,
        ),
    ).fetchone()
    assert row is not None
    task_id: int = row[0]
    if depends_on:
        conn.execute(
            "INSERT INTO ygg.deps (task_id, depends_on) SELECT %s, unnest(%s::bigint[])",
            (task_id, list(depends_on)),
        )
    return task_id


def check_parents(conn: Conn, tasks: Sequence[NewTask]) -> None:
    wanted = sorted({parent for task in tasks for parent in task.depends_on})
    if not wanted:
        return
    rows = conn.execute("SELECT id FROM ygg.tasks WHERE id = ANY(%s)", (wanted,))
    found = {row[0] for row in rows}
    for index, task in enumerate(tasks):
        missing = [str(i) for i in sorted(set(task.depends_on)) if i not in found]
        if missing:
            error = TaskNotFound(f"Cannot depend on task {', '.join(missing)}: no such task.")
            raise BatchItemError(index, error)


def insert_plain(conn: Conn, tasks: list[NewTask], now_us: int) -> list[int]:
    if not tasks:
        return []
    columns: list[list[Any]] = [[] for _ in range(8)]
    for t in tasks:
        values = (t.title, t.kind, t.priority, t.prompt, json.dumps(t.params))
        for column, value in zip(
            columns, (*values, t.max_attempts, t.timeout_s, t.external_id), strict=True
        ):
            column.append(value)
    rows = conn.execute(_INSERT_PLAIN, (now_us, *columns)).fetchall()
    # The ids come from one sequence in insertion order (ORDER BY ord): ascending as the batch.
    return sorted(row[0] for row in rows)
