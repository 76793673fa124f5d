"""Claim cost under a stored slot limit, on either engine, straight through the store.

    python scripts/claim_cost.py [--db URL] [--claims 2000] [--slots 4]

A fresh queue (a temp SQLite file, or the PostgreSQL database at `--db`, whose ygg tables are
emptied first) holds `--claims` ready tasks; one claimer asks for up to `--slots` at a time and
completes what it got, so every claim finds the pool's limit and its slot rows in play. Prints
the claim transaction's p50/p99 and claims+completions per second.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _bench_common import workdir

from ygg.store import NewTask, Outcome, open_store
from ygg.store.model import now_us


def fresh(db: str | None) -> str:
    if db is None:
        return str(workdir() / "claims.db")
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS ygg CASCADE")
    return db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="a postgresql:// URL (default: a temp SQLite file)")
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    db = fresh(args.db)
    store = open_store(db, synchronous="normal")
    store.enqueue_many([NewTask(f"t{i}", "k") for i in range(args.claims)], now_us())
    store.set_pool_limit("p", args.slots, daemon_id=None, now_us=now_us())
    latencies: list[float] = []
    done = 0
    started = time.perf_counter()
    while done < args.claims:
        asked = time.perf_counter()
        claims = store.claim(
            "p", ["k"], args.slots, slots=args.slots, owner=1, lease_us=10**9, now_us=now_us()
        )
        latencies.append(time.perf_counter() - asked)
        with store.batch():
            for claim in claims:
                store.complete(claim.task_id, claim.token, Outcome(result="ok"), now_us())
        done += len(claims)
    elapsed = time.perf_counter() - started
    store.close()
    cuts = statistics.quantiles(latencies, n=100)
    engine = "postgresql" if args.db else "sqlite"
    print(
        f"claim_cost {engine}: {len(latencies)} claims of up to {args.slots}, "
        f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, {done / elapsed:,.0f} tasks/s"
    )


if __name__ == "__main__":
    main()
