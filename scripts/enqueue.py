"""Enqueue rate through the Python API and through the `ygg submit` command.

    python scripts/enqueue.py [--api 5000] [--cli 50]

The API path is `ygg.api.submit`: one durable (synchronous=FULL) transaction per task, plus the
nudge to any daemon on the queue. The CLI path is one `ygg submit` process per task, as a
shell script would do it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _bench_common import workdir, write_config

from ygg import api
from ygg.config import load
from ygg.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", type=int, default=5000)
    parser.add_argument("--cli", type=int, default=50)
    args = parser.parse_args()
    directory = workdir()
    path = write_config(directory, {"sim": (2, ["general"])})
    config = load(str(path))
    store = open_store(config.daemon.db)
    started = time.perf_counter()
    for i in range(args.api):
        api.submit(store, api.new_task(config, title=f"t{i}", kind="general"))
    api_rate = args.api / (time.perf_counter() - started)
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    started = time.perf_counter()
    for i in range(args.cli):
        subprocess.run(
            [sys.executable, "-m", "ygg", "submit", f"c{i}"],
            cwd=directory,
            env=env,
            check=True,
            capture_output=True,
        )
    cli_rate = args.cli / (time.perf_counter() - started)
    print(
        f"enqueue through the Python API: {api_rate:,.0f} tasks/s ({args.api} tasks, "
        f"each its own durable transaction)"
    )
    print(f"enqueue through `ygg submit`: {cli_rate:,.1f} tasks/s ({args.cli} processes)")


if __name__ == "__main__":
    main()
