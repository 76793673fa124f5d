"""The head of each kind's line: the task a pool would claim next, or the oldest waiting one.

`ygg status` explains why each of these is not running yet (see ygg/ops/waiting.py).
"""

from __future__ import annotations

from ygg.store.model import Head
from ygg.store.sqlite.db import Database, reads

# The kinds with a queued task, by skipping through the ready index one kind at a time: as
# many index probes as there are kinds, however deep the queue.
_QUEUED_KINDS = """
WITH RECURSIVE queued(kind) AS (
    SELECT min(kind) FROM tasks INDEXED BY tasks_ready WHERE status = 'queued'
    UNION ALL
    SELECT (SELECT min(kind) FROM tasks INDEXED BY tasks_ready
            WHERE status = 'queued' AND kind > queued.kind)
    FROM queued WHERE kind IS NOT NULL
)
SELECT kind FROM queued WHERE kind IS NOT NULL
"""


@reads
def queue_heads(db: Database) -> list[Head]:
    conn = db.conn
    heads: list[Head] = []
    kinds = [r[0] for r in conn.execute(_QUEUED_KINDS)]
    for kind in kinds:
        row = conn.execute(
            "SELECT id, priority, created_us, run_after_us FROM tasks INDEXED BY tasks_ready "
            "WHERE status = 'queued' AND kind = ? ORDER BY priority, id LIMIT 1",
            (kind,),
        ).fetchone()
        heads.append(Head(kind, row[0], "queued", row[1], row[2], row[3]))
    waiting = conn.execute(
        "SELECT kind, min(id) FROM tasks WHERE status = 'waiting' GROUP BY kind"
    ).fetchall()
    for kind, task_id in waiting:
        if kind in kinds:
            continue  # the queued head says more about the kind's line
        priority, created_us = conn.execute(
            "SELECT priority, created_us FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        blockers = tuple(
            r[0]
            for r in conn.execute(
                "SELECT deps.depends_on FROM deps JOIN tasks ON tasks.id = deps.depends_on "
                "WHERE deps.task_id = ? AND tasks.status != 'done' ORDER BY 1",
                (task_id,),
            )
        )
        heads.append(Head(kind, task_id, "waiting", priority, created_us, None, blockers))
    return sorted(heads, key=lambda h: h.kind)
