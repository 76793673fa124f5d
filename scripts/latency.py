"""Cross-process submit-to-start latency with an idle daemon.

    python scripts/latency.py [--tasks 200]

This process submits one task at a time through the Python API (which nudges the daemon) and
waits for it to finish before the next, so the daemon is idle at every submit. Latency is from
just before the submit call to the claim that starts the attempt (the task's started_at).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from _bench_common import workdir, write_config

from ygg import api
from ygg.config import load
from ygg.store import open_store
from ygg.store.model import now_us


def wait_for(predicate: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the daemon did not answer in time")
        time.sleep(0.0005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    directory = workdir()
    path = write_config(directory, {"sim": (2, ["general"])})
    config = load(str(path))
    store = open_store(config.daemon.db)
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ygg", "--config", str(path), "loop"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(store.daemons, 10)
        time.sleep(0.2)
        latencies_ms = []
        for i in range(args.tasks):
            before = now_us()
            task = api.submit(
                store, api.new_task(config, title=f"t{i}", kind="general", params={"seconds": "0"})
            )
            wait_for(lambda: store.get(task.id).status == "done", 10)  # noqa: B023
            latencies_ms.append((store.get(task.id).started_us - before) / 1000)
            time.sleep(0.005)  # let the daemon settle back to idle
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
    latencies_ms.sort()
    p50 = statistics.median(latencies_ms)
    p99 = latencies_ms[min(len(latencies_ms) - 1, int(len(latencies_ms) * 0.99))]
    print(
        f"submit-to-start over {len(latencies_ms)} tasks: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {latencies_ms[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
