"""Claim latency and daemon memory against queue depth.

    python scripts/claim_depth.py [--depths 1000,100000,1000000]

For each depth, a fresh queue holds that many ready tasks spread over 20 kinds and 5
priorities. Then (1) claim+complete one task at a time straight through the store, for a pool
serving 3 of the kinds: p50/p99 latency of the claim transaction; (2) a real `ygg loop` daemon
on that queue, whose pools serve no kind that is queued, idles for a few seconds: its RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import psutil
from _bench_common import workdir, write_config

from ygg.store import NewTask, Outcome, open_store
from ygg.store.model import now_us

KINDS = [f"kind-{i}" for i in range(20)]


def fill(db: str, depth: int) -> None:
    store = open_store(db, synchronous="normal")
    now, done = now_us(), 0
    while done < depth:
        with store.write():
            for i in range(done, min(done + 10_000, depth)):
                store.enqueue(NewTask(f"t{i}", KINDS[i % 20], priority=(i // 20) % 5), now)
        done = min(done + 10_000, depth)
    store.close()


def claim_latency_ms(db: str, claims: int = 2000) -> list[float]:
    store = open_store(db, synchronous="normal")
    samples = []
    for _ in range(claims):
        started = time.perf_counter()
        [claim] = store.claim(
            "bench", KINDS[:3], 1, slots=4, owner=1, lease_us=30_000_000, now_us=now_us()
        )
        samples.append((time.perf_counter() - started) * 1000)
        store.complete(claim.task_id, claim.token, Outcome("ok"), now_us())
    store.close()
    return sorted(samples)


def idle_rss_mb(directory: object) -> float:
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ygg", "loop"],
        cwd=str(directory),
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(4.0)  # started, claimed nothing, logged a status or two
        return float(psutil.Process(daemon.pid).memory_info().rss) / 2**20
    finally:
        daemon.terminate()
        daemon.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", default="1000,100000,1000000")
    args = parser.parse_args()
    for depth in [int(d) for d in args.depths.split(",")]:
        directory = workdir()
        # The daemon's pool serves a kind nobody queued: it idles over the full queue.
        write_config(directory, {"bench": (4, ["nothing-queued"])})
        db = str(directory / "queue.db")
        fill(db, depth)
        samples = claim_latency_ms(db, min(2000, depth * 3 // 20))
        p50 = statistics.median(samples)
        p99 = samples[int(len(samples) * 0.99)]
        rss = idle_rss_mb(directory)
        print(
            f"depth {depth:>9,}: claim p50 {p50:.3f} ms, p99 {p99:.3f} ms; "
            f"idle daemon RSS {rss:.1f} MB"
        )


if __name__ == "__main__":
    main()
