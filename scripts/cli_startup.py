"""How fast the `ygg` command starts, as ratios to the interpreter's own start-up.

    python scripts/cli_startup.py [--runs 30]

People and agents call `ygg submit` in loops, so its start-up is the cost of every task they
add. Each command runs `--runs` times in a fresh queue (the first run of each is discarded as
a warm-up of the file and bytecode caches); the median wall time is compared with
`python -c pass` measured in the same run, with the same interpreter. Targets:
`ygg --version` <= 2x, `ygg submit`, `ygg list` and `ygg show` <= 3x.

The median CPU time (user + system) of each command is shown beside it: on a shared machine
it moves less than the wall time, which includes waiting for a core.

The configuration is a minute old, as it is between edits, so its cache (ygg/config/cache.py,
kept in the run's own folder) holds it; two more rows time `ygg submit` without that cache,
as the first command after an edit runs, and with a daemon running (`ygg loop`, sim pools),
which each submit nudges. Bytecode: a regular install (`pip install .`) has its
.pyc files written by pip at install time, and an editable one writes them on first import;
PYTHONDONTWRITEBYTECODE is dropped for the commands so that both use them, as they would
outside this environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from _bench_common import workdir

from ygg.store import open_store

TARGETS = {"--version": 2.0, "submit": 3.0, "list": 3.0, "show": 3.0}


def ygg_command() -> list[str]:
    """The installed console script beside this interpreter (what people run), else -m."""
    script = Path(sys.executable).with_name("ygg")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ygg"]


def command_env(cache_home: Path) -> dict[str, str]:
    # Bytecode caches on, as an installed ygg has them (pip compiles at install time): with
    # PYTHONDONTWRITEBYTECODE set, every run would compile every module from source.
    env = {
        k: v for k, v in os.environ.items() if k not in ("YGG_CONFIG", "PYTHONDONTWRITEBYTECODE")
    }
    env["XDG_CACHE_HOME"] = str(cache_home)
    return env


def medians_s(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> tuple[float, float]:
    """The median wall time and the median CPU time (user + system) of `argv`."""
    walls, cpus = [], []
    for _ in range(runs + 1):
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} failed")
    return statistics.median(walls[1:]), statistics.median(cpus[1:])


COMMANDS = {
    "--version": ["--version"],
    "submit": ["submit", "a task", "--kind", "general"],
    "list": ["list", "--limit", "20"],
    "show": ["show", "1"],
}


def prepare(directory: Path, ygg: list[str], env: dict[str, str]) -> None:
    """A demo queue holding one task; no status server (its port may be taken), no drain."""
    for argv in (
        ["init", "--demo"],
        ["config", "set", "daemon.status_listen", '""'],
        ["config", "set", "daemon.drain_seconds", "0"],
    ):
        subprocess.run([*ygg, *argv], cwd=directory, env=env, check=True, capture_output=True)
    minute_ago = time.time() - 60
    for path in (directory / "ygg.toml", *sorted((directory / "ygg.d").glob("*.toml"))):
        os.utime(path, (minute_ago, minute_ago))
    subprocess.run(
        [*ygg, "submit", "first"], cwd=directory, env=env, check=True, capture_output=True
    )


@contextlib.contextmanager
def daemon_running(directory: Path, ygg: list[str], env: dict[str, str]) -> Iterator[None]:
    """`ygg loop` on the queue, registered (so each submit nudges it), stopped afterwards."""
    daemon = subprocess.Popen([*ygg, "loop"], cwd=directory, env=env, stderr=subprocess.DEVNULL)
    try:
        store = open_store(str(directory / "ygg.db"))
        deadline = time.monotonic() + 30
        while not store.daemons():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("the daemon did not start")
            time.sleep(0.05)
        store.close()
        yield
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def instructions(argv: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Instructions executed (valgrind's callgrind): the same on a busy machine as on a quiet
    one, where wall and CPU times are not."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stderr.rsplit("Collected :", 1)[1].split()[0])


def print_instructions(directory: Path, ygg: list[str], env: dict[str, str]) -> None:
    base = instructions([sys.executable, "-c", "pass"], directory, env)
    print(f"\ninstructions (callgrind): python -c pass {base / 1e6:.1f} M")
    script = ygg[1:] if ygg[0] == sys.executable else ygg  # -m ygg, or the console script
    for name, argv in COMMANDS.items():
        count = instructions([sys.executable, *script, *argv], directory, env)
        print(
            f"ygg {' '.join(argv):<43} {count / 1e6:>6.1f} M {count / base:>6.2f}  "
            f"<= {TARGETS[name]:g}"
        )


def row(label: str, took: tuple[float, float], base: tuple[float, float], target: str) -> str:
    (wall, cpu), (base_wall, base_cpu) = took, base
    verdict = ""
    if target:
        verdict = "ok" if wall / base_wall <= float(target) else "MISSED"
    return (
        f"ygg {label:<43} {wall * 1000:>6.1f} {wall / base_wall:>8.2f} "
        f"{cpu * 1000:>7.1f} {cpu / base_cpu:>8.2f}  {'<= ' + target if target else '':<5} "
        f"{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (needs valgrind)"
    )
    args = parser.parse_args()
    directory = workdir()
    ygg = ygg_command()
    env = command_env(directory / "cache")
    prepare(directory, ygg, env)
    base = medians_s([sys.executable, "-c", "pass"], directory, env, args.runs)
    print(
        f"python -c pass: {base[0] * 1000:.1f} ms, CPU {base[1] * 1000:.1f} ms (medians of "
        f"{args.runs}); ygg is {' '.join(ygg)}"
    )
    print(f"{'command':<47} {'ms':>6} {'÷ python':>8} {'CPU ms':>7} {'÷ python':>8}  target")
    for name, argv in COMMANDS.items():
        took = medians_s([*ygg, *argv], directory, env, args.runs)
        print(row(" ".join(argv), took, base, format(TARGETS[name], "g")))
    nowhere = directory / "no-cache"  # a file: no cache folder can be made below it
    nowhere.write_text("")
    submit = [*ygg, *COMMANDS["submit"]]
    took = medians_s(submit, directory, {**env, "XDG_CACHE_HOME": str(nowhere)}, args.runs)
    print(row(" ".join(COMMANDS["submit"]) + " (no cache)", took, base, ""))
    with daemon_running(directory, ygg, env):
        took = medians_s(submit, directory, env, args.runs)
    print(row(" ".join(COMMANDS["submit"]) + " (a daemon runs)", took, base, ""))
    if args.instructions:
        print_instructions(directory, ygg, env)
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
