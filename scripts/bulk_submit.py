"""Bulk enqueue: `ygg submit --jsonl` and `ygg.api.submit_many` against one-by-one API submits
and raw SQLite inserts, in one run on this machine.

    python scripts/bulk_submit.py [--tasks 100000] [--one-by-one 5000]

- raw SQLite: the same columns and indexes as ygg's tasks table, one executemany in one
  transaction (synchronous=FULL, as `ygg submit` writes) — the ceiling;
- api.submit_many: the library call, NewTask objects already built;
- ygg submit --jsonl: the whole command, from a file: process start, JSON parsing and
  validation of every line, one transaction, the ids printed;
- api.submit, one by one: one durable transaction (and one nudge) per task.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path

from _bench_common import workdir, write_config, ygg

from ygg import api
from ygg.config import load
from ygg.store import open_store
from ygg.store.sqlite.schema import MIGRATIONS, statements


def raw_inserts(tasks: int) -> float:
    conn = sqlite3.connect(workdir() / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for script in MIGRATIONS:
        for statement in statements(script):
            conn.execute(statement)
    rows = [(f"t{i}", "general", 2, "queued", "", "{}", 3, 0) for i in range(tasks)]
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO tasks (title, kind, priority, status, prompt, params, max_attempts, "
        "created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    return tasks / (time.perf_counter() - started)


def fresh_queue() -> tuple[Path, Path]:
    directory = workdir()
    return directory, write_config(directory, {"sim": (2, ["general"])}, synchronous="full")


def api_many(tasks: int) -> float:
    _, path = fresh_queue()
    config = load(str(path))
    batch = [api.new_task(config, title=f"t{i}", kind="general") for i in range(tasks)]
    with open_store(config.daemon.db) as store:
        started = time.perf_counter()
        ids = api.submit_many(store, batch)
        elapsed = time.perf_counter() - started
    assert len(ids) == tasks
    return tasks / elapsed


def cli_jsonl(tasks: int) -> float:
    directory, _ = fresh_queue()
    jsonl = directory / "tasks.jsonl"
    jsonl.write_text("".join(json.dumps({"title": f"t{i}"}) + "\n" for i in range(tasks)))
    started = time.perf_counter()
    out = ygg("submit", "--jsonl", str(jsonl), cwd=directory).stdout
    elapsed = time.perf_counter() - started
    assert len(out.split()) == tasks
    return tasks / elapsed


def one_by_one(tasks: int) -> float:
    _, path = fresh_queue()
    config = load(str(path))
    with open_store(config.daemon.db) as store:
        started = time.perf_counter()
        for i in range(tasks):
            api.submit(store, api.new_task(config, title=f"t{i}", kind="general"))
        return tasks / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--one-by-one", type=int, default=5000)
    args = parser.parse_args()
    raw = raw_inserts(args.tasks)
    figures = [
        ("raw SQLite executemany (ceiling)", raw, args.tasks),
        ("api.submit_many", api_many(args.tasks), args.tasks),
        ("ygg submit --jsonl (whole command)", cli_jsonl(args.tasks), args.tasks),
        ("api.submit one by one", one_by_one(args.one_by_one), args.one_by_one),
    ]
    print(f"{'path':<36} {'tasks':>8} {'tasks/s':>12} {'÷ raw':>7}")
    for name, rate, n in figures:
        print(f"{name:<36} {n:>8,} {rate:>12,.0f} {rate / raw:>7.3f}")


if __name__ == "__main__":
    main()
