"""What runs inside the daemon's write transaction, and what must not: scans of processes and
of the whole queue never hold the write lock that submits and other daemons wait for."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import uvloop

from tests.conftest import MakeConfig
from tests.integration.test_backends import submit
from ygg.dispatch import leases
from ygg.dispatch.dispatcher import Dispatcher
from ygg.store import Store, open_store
from ygg.store.writer import StoreThread


def lock_is_free(db: str) -> bool:
    """Whether another connection could take the write lock right now (without waiting)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return True


def test_reads_go_past_a_held_write_lock(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    open_store(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # held until the reads below have answered

    async def main() -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        thread = StoreThread(lambda: open_store(db, busy_timeout_s=30))
        await thread.start()
        try:
            async with asyncio.timeout(10):
                load = await thread.read(Store.pool_load, {"p": ["k"]})
                counts = await thread.read(Store.counts)
            return load, counts
        finally:
            holder.execute("ROLLBACK")
            await thread.stop()

    try:
        assert uvloop.run(main()) == ({"p": (0, 0)}, {})
    finally:
        holder.close()


def test_the_reaper_scans_processes_outside_the_write_transaction(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(
        '[pools.sim]\nbackend = "sim"\nseconds = 0.3\nslots = 1\nkinds = ["general"]\n',
        daemon="lease_seconds = 0.4",  # a reaper round every 0.2 s
    )
    seen: list[str] = []
    judge = leases.judge_daemons

    def observed(*args: Any) -> Any:
        # The store thread runs every write inside its transaction: the scan must be elsewhere.
        seen.append(threading.current_thread().name)
        return judge(*args)

    monkeypatch.setattr(leases, "judge_daemons", observed)
    with open_store(config.daemon.db) as store:
        for i in range(3):
            submit(store, config, f"t{i}")

    async def main() -> None:
        async with asyncio.timeout(15):
            await Dispatcher(config, until_idle=True).run()

    uvloop.run(main())
    assert len(seen) >= 3
    assert "ygg-store" not in seen, seen
