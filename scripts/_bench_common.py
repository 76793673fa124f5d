"""Shared set-up for the benchmark scripts: a throwaway queue with sim pools."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ygg.store import NewTask, open_store
from ygg.store.model import now_us


def write_config(
    directory: Path,
    pools: dict[str, tuple[int, list[str]]],
    synchronous: str = "normal",
    seconds: float = 0.0,
    log_level: str = "info",
) -> Path:
    lines = [
        "[daemon]",
        'db = "queue.db"',
        f'synchronous = "{synchronous}"',
        'log_format = "json"',
        f'log_level = "{log_level}"',
        "lease_seconds = 30",
        "",
    ]
    for name, (slots, kinds) in pools.items():
        kind_list = ", ".join(f'"{k}"' for k in kinds)
        lines += [
            f"[pools.{name}]",
            'backend = "sim"',
            f"seconds = {seconds}",
            f"slots = {slots}",
            f"kinds = [{kind_list}]",
            "",
        ]
    path = directory / "ygg.toml"
    path.write_text("\n".join(lines))
    return path


def fill(db: Path, kinds: list[str], count: int, *, priorities: int = 1) -> None:
    """Enqueues `count` zero-second tasks in large transactions (set-up, not measured)."""
    store = open_store(str(db), synchronous="normal")
    now = now_us()
    done = 0
    while done < count:
        with store.write():
            for i in range(done, min(done + 5000, count)):
                store.enqueue(
                    NewTask(
                        f"t{i}",
                        kinds[i % len(kinds)],
                        priority=i % priorities,
                        params={"seconds": "0"},
                    ),
                    now,
                )
        done = min(done + 5000, count)
    store.close()


def ygg(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "ygg", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        check=check,
    )


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ygg-bench-"))
