"""How fast the `ygg` command starts, as ratios to the interpreter's own start-up.

    python scripts/cli_startup.py [--runs 30]

People and agents call `ygg submit` in loops, so its start-up is the cost of every task they
add. Each command runs `--runs` times in a fresh queue (the first run of each is discarded as
a warm-up of the file and bytecode caches); the median wall time is compared with
`python -c pass` measured in the same run, with the same interpreter. Targets:
`ygg --version` <= 2x, `ygg submit`, `ygg list` and `ygg show` <= 3x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bench_common import workdir

TARGETS = {"--version": 2.0, "submit": 3.0, "list": 3.0, "show": 3.0}


def ygg_command() -> list[str]:
    """The installed console script beside this interpreter (what people run), else -m."""
    script = Path(sys.executable).with_name("ygg")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ygg"]


def median_s(argv: list[str], cwd: Path, runs: int) -> float:
    # Bytecode caches on, as an installed ygg has them (pip compiles at install time): with
    # PYTHONDONTWRITEBYTECODE set, every run would compile every module from source.
    env = {
        k: v for k, v in os.environ.items() if k not in ("YGG_CONFIG", "PYTHONDONTWRITEBYTECODE")
    }
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    directory = workdir()
    ygg = ygg_command()
    subprocess.run([*ygg, "init", "--demo"], cwd=directory, check=True, capture_output=True)
    subprocess.run([*ygg, "submit", "first"], cwd=directory, check=True, capture_output=True)
    base = median_s([sys.executable, "-c", "pass"], directory, args.runs)
    print(f"python -c pass: {base * 1000:.1f} ms (median of {args.runs}); ygg is {' '.join(ygg)}")
    print(f"{'command':<28} {'median ms':>10} {'÷ python':>9} {'target':>7}")
    commands = {
        "--version": ["--version"],
        "submit": ["submit", "a task", "--kind", "general"],
        "list": ["list", "--limit", "20"],
        "show": ["show", "1"],
    }
    for name, argv in commands.items():
        took = median_s([*ygg, *argv], directory, args.runs)
        ratio = took / base
        verdict = "ok" if ratio <= TARGETS[name] else "MISSED"
        print(
            f"ygg {' '.join(argv):<24} {took * 1000:>10.1f} {ratio:>9.2f} "
            f"{'<= ' + format(TARGETS[name], 'g'):>7} {verdict}"
        )
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
