"""The machine's raw-SQLite ceiling: a claim+complete loop in plain sqlite3, no ygg.

    python scripts/raw_sqlite.py [--tasks 20000]

The same WAL file layout and the same two statements per task as ygg's queue (take the most
urgent queued task, mark it done), one transaction per task and in batches of 32, with
synchronous=NORMAL and FULL. Every ygg figure can be read as a ratio to these.
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from _bench_common import workdir

SCHEMA = """
CREATE TABLE tasks (id INTEGER PRIMARY KEY, kind TEXT, priority INTEGER, status TEXT,
                    owner INTEGER, started REAL, finished REAL);
CREATE INDEX ready ON tasks (kind, priority, id) WHERE status = 'queued';
"""


def run(tasks: int, synchronous: str, batch: int) -> float:
    path = workdir() / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tasks (kind, priority, status) VALUES ('k', ?, 'queued')",
        [(i % 5,) for i in range(tasks)],
    )
    conn.execute("COMMIT")
    started = time.perf_counter()
    for _ in range(tasks // batch):
        conn.execute("BEGIN IMMEDIATE")
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM tasks INDEXED BY ready WHERE status = 'queued' AND kind = 'k' "
                "ORDER BY priority, id LIMIT ?",
                (batch,),
            )
        ]
        marks = ",".join("?" * len(ids))
        conn.execute(
            f"UPDATE tasks SET status = 'running', owner = 1, started = ? WHERE id IN ({marks})",
            [time.time(), *ids],
        )
        conn.executemany(
            "UPDATE tasks SET status = 'done', finished = ? WHERE id = ?",
            [(time.time(), i) for i in ids],
        )
        conn.execute("COMMIT")
    return (tasks // batch) * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    for synchronous in ("NORMAL", "FULL"):
        for batch in (1, 32):
            rate = run(args.tasks, synchronous, batch)
            print(
                f"raw sqlite3 claim+complete, synchronous={synchronous}, {batch:>2} per "
                f"transaction: {rate:,.0f} tasks/s"
            )


if __name__ == "__main__":
    main()
