"""Importing tasks from another tracker: insert or update by `external_id`, in one transaction.

The whole batch commits or none of it does. A task already known by its external id is updated
only while it is still `waiting` or `queued`; once it has started, ygg's record wins.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence

from ygg.errors import InvalidInput
from ygg.store.model import Imported, NewTask, Upsert, UpsertResult, upsert_change
from ygg.store.sqlite import deps

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from ygg.store.sqlite.store import SQLiteStore

_CHUNK = 500  # ids per IN (...) list, well below SQLite's bound-variable limit


def upsert_external(
    store: SQLiteStore,
    items: Sequence[Upsert],
    now_us: int,
    progress: Callable[[int], None] | None = None,
) -> UpsertResult:
    """Writes `items` in order (each one's `after` must precede it or be stored already)."""
    result = UpsertResult([], [], [], [], {})
    ids: dict[str, int] = {}
    with store.write() as conn:
        for done, item in enumerate(items, start=1):
            external_id = item.task.external_id
            if external_id is None:
                raise InvalidInput(f"Task {item.task.title!r} has no external id to import by.")
            depends_on = tuple(sorted({_task_id(conn, ids, ref) for ref in item.after}))
            stored = _stored(conn, external_id)
            if stored is None:
                ids[external_id] = store.enqueue(item.task._replace(depends_on=depends_on), now_us)
                result.imported.append(external_id)
            else:
                ids[external_id] = stored.id
                _merge(conn, stored, item.task, depends_on, now_us, result)
            if progress is not None:
                progress(done)
        batch = {item.task.external_id for item in items}
        result.status.update(_statuses(conn, {key: ids[key] for key in ids if key in batch}))
    return result


def _task_id(conn: sqlite3.Connection, ids: dict[str, int], external_id: str) -> int:
    if external_id not in ids:
        row = conn.execute("SELECT id FROM tasks WHERE external_id = ?", (external_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"Cannot depend on {external_id}: no task has that external id.")
        ids[external_id] = row[0]
    return ids[external_id]


def _stored(conn: sqlite3.Connection, external_id: str) -> Imported | None:
    row = conn.execute(
        "SELECT id, status, title, kind, priority, prompt FROM tasks WHERE external_id = ?",
        (external_id,),
    ).fetchone()
    if row is None:
        return None
    parents = conn.execute("SELECT depends_on FROM deps WHERE task_id = ?", (row[0],))
    task_id, status, title, kind, priority, prompt = row
    return Imported(
        task_id, status, title, kind, priority, prompt, frozenset(r[0] for r in parents)
    )


def _merge(
    conn: sqlite3.Connection,
    stored: Imported,
    task: NewTask,
    depends_on: tuple[int, ...],
    now_us: int,
    result: UpsertResult,
) -> None:
    deps_change = upsert_change(stored, task, depends_on, result)
    if deps_change is None:
        return
    conn.execute(
        "UPDATE tasks SET title = ?, kind = ?, priority = ?, prompt = ? WHERE id = ?",
        (task.title, task.kind, task.priority, task.prompt, stored.id),
    )
    if deps_change:
        _replace_deps(conn, stored, depends_on, now_us)
    result.updated.append(task.external_id or "")


def _replace_deps(
    conn: sqlite3.Connection, stored: Imported, depends_on: tuple[int, ...], now_us: int
) -> None:
    _refuse_cycle(conn, stored.id, depends_on)
    conn.execute("DELETE FROM deps WHERE task_id = ?", (stored.id,))
    conn.executemany(
        "INSERT INTO deps (task_id, depends_on) VALUES (?, ?)",
        [(stored.id, parent) for parent in depends_on],
    )
    status = deps.unfinished_status(conn, depends_on)
    if status == stored.status:
        return
    if status == "blocked":  # as enqueue does: a new dependency already failed or was cancelled
        conn.execute(
            "UPDATE tasks SET status = 'blocked', finished_us = ?, "
            "error = 'a dependency failed or was cancelled' WHERE id = ?",
            (now_us, stored.id),
        )
        deps.block_downstream(conn, stored.id, "blocked", now_us)
    else:
        conn.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, stored.id))


def _refuse_cycle(conn: sqlite3.Connection, task_id: int, depends_on: tuple[int, ...]) -> None:
    """A task must not come to depend on itself, directly or through others: both would wait
    for ever. (A new task cannot close a cycle: nothing depends on it yet.)"""
    if not depends_on:
        return
    marks = ",".join("?" * len(depends_on))
    reached = conn.execute(
        f"""
        WITH RECURSIVE up(id) AS (
            SELECT id FROM tasks WHERE id IN ({marks})
            UNION SELECT deps.depends_on FROM deps JOIN up ON deps.task_id = up.id
        )
        SELECT 1 FROM up WHERE id = ? LIMIT 1
        """,
        (*depends_on, task_id),
    ).fetchone()
    if reached is not None:
        raise InvalidInput(
            f"Task {task_id} cannot depend on task {', '.join(map(str, depends_on))}: one of "
            "them already depends on it, which would make a dependency cycle."
        )


def _statuses(conn: sqlite3.Connection, ids: dict[str, int]) -> dict[str, str]:
    by_task = {task_id: external_id for external_id, task_id in ids.items()}
    statuses: dict[str, str] = {}
    for chunk in _chunks(list(by_task)):
        rows = conn.execute(
            f"SELECT id, status FROM tasks WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
        statuses.update((by_task[task_id], status) for task_id, status in rows)
    return statuses


def _chunks(values: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
