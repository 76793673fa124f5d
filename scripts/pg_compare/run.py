"""Drain rate of procrastinate and pgqueuer on a throwaway PostgreSQL 15 cluster.

    .venv/bin/python scripts/pg_compare/run.py [--jobs 5000] [--timeout-s 120]

Runs with ygg's venv (for tests/support/pg.py) and installs the competitors into a venv of their
own (`.venv-pgcompare` under ~/.cache/ygg, or --venv), never into ygg's. Each case gets a fresh
database on one cluster and runs in a process of its own, bounded by --timeout-s; the cluster is
stopped at the end whatever happens. Prints one table, and with --json the raw records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tests.support.pg import PgCluster  # noqa: E402  (the repository root is added just above)

REQUIREMENTS = HERE / "requirements.txt"
EXIT_GRACE_S = 60.0  # beyond the drain's own bound: set-up, enqueue, shutdown
INSTALL_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Case:
    script: str
    args: tuple[str, ...]


def default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ygg" / ".venv-pgcompare"


def ensure_venv(venv: Path) -> Path:
    """Creates the comparison venv and installs requirements.txt once (again when it changes)."""
    if venv.resolve() == Path(sys.prefix).resolve():
        raise SystemExit(f"{venv} is the venv running this script: pick another with --venv")
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing the competitors into {venv} …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-qq", "-r", str(REQUIREMENTS)],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    stamp.write_text(wanted)
    return python


def versions(python: Path) -> str:
    code = (
        "from importlib.metadata import version as v\n"
        "print(', '.join(f'{p} {v(p)}' for p in "
        "('procrastinate', 'pgqueuer', 'psycopg', 'asyncpg')))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or done.stderr.strip()


def cases(args: argparse.Namespace) -> list[Case]:
    found = [Case("bench_procrastinate.py", ("--concurrency", str(args.concurrency)))]
    for driver in args.pgqueuer_drivers.split(","):
        found.append(Case("bench_pgqueuer.py", ("--driver", driver)))
        found.append(Case("bench_pgqueuer.py", ("--driver", driver, "--limit", str(args.limit))))
    return found


def run_case(python: Path, cluster: PgCluster, n: int, case: Case, args: Any) -> dict[str, Any]:
    """One case in its own process on a fresh database; its JSON record, or an error record."""
    url = cluster.create_database(f"bench_{n}")
    command = [str(python), str(HERE / case.script), "--url", url, "--jobs", str(args.jobs)]
    command += ["--timeout-s", str(args.timeout_s), *case.args]
    command += ["--server-pid", str(cluster.postmaster_pid() or 0)]
    command += ["--no-analyze"] if args.no_analyze else []
    record: dict[str, Any] = {"system": case.script, "setting": " ".join(case.args)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout_s + EXIT_GRACE_S
        )
    except subprocess.TimeoutExpired:
        return {**record, "error": f"no result within {args.timeout_s + EXIT_GRACE_S:.0f} s"}
    finally:
        cluster.drop_database(f"bench_{n}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {**record, "error": f"exit {done.returncode}: " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def table(records: list[dict[str, Any]]) -> str:
    rows = [("system", "setting", "done", "seconds", "tasks/s", "CPU µs/task", "note")]
    for r in records:
        if "error" in r:
            rows.append((r["system"], r["setting"], "-", "-", "-", "-", r["error"][:120]))
            continue
        rate = r["jobs"] / r["seconds"] if not r["timed_out"] else r["done"] / r["seconds"]
        note = f"timed out, {r['left']} left" if r["timed_out"] else ""
        finished = max(r["jobs"] - r["left"], 1)
        cpu = f"{r['cpu_s'] / finished * 1e6:.0f} + {r['server_cpu_s'] / finished * 1e6:.0f}"
        done = f"{r['jobs'] - r['left']}/{r['jobs']}"
        seconds = f"{r['seconds']:.2f}"
        rows.append((r["system"], r["setting"], done, seconds, f"{rate:,.0f}", cpu, note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--timeout-s", type=float, default=120.0, help="bound on each drain")
    parser.add_argument("--concurrency", type=int, default=10, help="procrastinate's worker")
    parser.add_argument("--limit", type=int, default=10, help="pgqueuer's concurrency_limit")
    parser.add_argument("--pgqueuer-drivers", default="asyncpg", help="asyncpg,psycopg")
    parser.add_argument(
        "--no-analyze", action="store_true", help="drain without ANALYZE of the filled table"
    )
    parser.add_argument("--venv", type=Path, default=default_venv())
    parser.add_argument("--json", action="store_true", help="also print the raw records")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    python = ensure_venv(args.venv)
    print(versions(python), flush=True)
    records = []
    with PgCluster() as cluster:
        for n, case in enumerate(cases(args)):
            started = time.monotonic()
            records.append(run_case(python, cluster, n, case, args))
            print(f"  {case.script} {' '.join(case.args)}: {time.monotonic() - started:.1f} s")
    analyzed = "not analyzed" if args.no_analyze else "table analyzed after the enqueue"
    print(
        f"\nDrain of {args.jobs} no-op jobs, one worker, PostgreSQL 15 (fsync off), {analyzed}:\n"
    )
    print(table(records))
    if args.json:
        print(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
