"""The dashboard must not slow the dispatcher (docs/PERFORMANCE.md, "The web server").

    python scripts/web_bench.py [--tasks 20000] [--queued 100000] [--requests 500] [--rounds 9]
                                [--only drain|status]

1. Drain rate of zero-second sim tasks (tasks/s between the first claim and the last
   completion, read from the queue) with no event stream open, then with ten, each read by a
   client thread; each round runs the two in turn, in alternating order (ABBA), and the median
   ratio of the rounds is printed: on a shared machine the rate of one drain varies by ±15 %.
2. `GET /api/status` latency (p50, p99) with --queued tasks waiting behind a busy one-slot pool,
   a request every 10 ms or so (so the answers span several of the daemon's re-reads).
Real daemons and real HTTP on 127.0.0.1; a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.daemons import run_ygg, wait_until
from tests.support.web import TOKEN, WebDaemon, web_daemon

DRAIN_POOL = '\n[pools.sim]\nbackend = "sim"\nseconds = 0\nslots = 16\nkinds = ["general"]\n'
PARKED_POOL = '\n[pools.sim]\nbackend = "sim"\nseconds = 3600\nslots = 1\nkinds = ["general"]\n'


def fill(web: WebDaemon, directory: Path, tasks: int) -> None:
    lines = "".join(json.dumps({"title": f"t{i}"}) + "\n" for i in range(tasks))
    (directory / "tasks.jsonl").write_text(lines)
    assert run_ygg(web.config, "submit", "--jsonl", str(directory / "tasks.jsonl")).returncode == 0


def stream(base: str, stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.stream("GET", base + "/api/events", headers=headers, timeout=None) as response:
        for _ in response.iter_bytes():
            if stop.is_set():
                return


def drain_rate(tasks: int, streams: int) -> float:
    with tempfile.TemporaryDirectory() as name, web_daemon(Path(name), DRAIN_POOL) as web:
        stop = threading.Event()
        readers = [threading.Thread(target=stream, args=(web.base, stop)) for _ in range(streams)]
        for reader in readers:
            reader.start()
        time.sleep(0.5)  # subscribed
        fill(web, Path(name), tasks)
        db = sqlite3.connect(Path(name) / "queue.db")
        done = "SELECT count(*) FROM tasks WHERE status = 'done'"
        assert wait_until(lambda: db.execute(done).fetchone()[0] == tasks, 600, 0.2)
        first, last = db.execute("SELECT min(started_us), max(finished_us) FROM tasks").fetchone()
        db.close()
        stop.set()
        run_ygg(web.config, "submit", "one more to end the streams")
        for reader in readers:
            reader.join(10)
        return tasks / ((last - first) / 1e6)


def status_latency(queued: int, requests: int) -> tuple[float, float]:
    # drain_seconds = 0: the parked hour-long task must not hold the stop.
    parked = web_daemon(Path(name := tempfile.mkdtemp()), PARKED_POOL, daemon="drain_seconds = 0")
    with parked as web:
        fill(web, Path(name), queued)
        with web.client() as http:
            timings = []
            for _ in range(requests):
                started = time.perf_counter()
                assert http.get("/api/status").status_code == 200
                timings.append(time.perf_counter() - started)
                time.sleep(0.01)  # spread over seconds: the answers span several re-reads
        timings.sort()
        print(f"/api/status slowest of {requests}: {timings[-1] * 1000:.1f} ms")
        return timings[len(timings) // 2], timings[int(len(timings) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=["drain", "status"], help="run one part")
    args = parser.parse_args()
    if args.only != "status":
        drains(args.tasks, args.rounds)
    if args.only != "drain":
        p50, p99 = status_latency(args.queued, args.requests)
        print(
            f"/api/status with {args.queued:,} queued: "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        )


def drains(tasks: int, rounds: int) -> None:
    """Each round drains without and with streams, the first of the two alternating between
    rounds, so that a drift of the machine's speed favours neither."""
    ratios = []
    for round_no in range(1, rounds + 1):
        if round_no % 2:
            without, with_streams = drain_rate(tasks, 0), drain_rate(tasks, 10)
        else:
            with_streams, without = drain_rate(tasks, 10), drain_rate(tasks, 0)
        ratios.append(with_streams / without)
        print(
            f"round {round_no}: drain {without:,.0f} tasks/s without event streams, "
            f"{with_streams:,.0f} with ten ({ratios[-1]:.0%})"
        )
    print(f"drain with ten event streams, median of {rounds} rounds: {median(ratios):.0%}")


if __name__ == "__main__":
    main()
