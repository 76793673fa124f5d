"""kill -9 soak: daemons killed at random moments and restarted, judged at the host side.

    python scripts/soak.py [--minutes 5] [--tasks 5000] [--kills 60] [--daemons async,legacy]
    python scripts/soak.py --postgres [--terminations 30] [--server-restarts 5] ...

The same scenario as tests/system/test_faults.py, longer: command pools whose host
(tests/support/run_host.py) logs every run's start, heartbeats and end; tasks are submitted
in waves while one of the daemons is SIGKILLed at a random moment and restarted at once. It
prints: lost tasks, concurrent duplicates (two runs of one task in progress at once at the
host), stale results accepted (a recorded result that is not from the task's last run), stuck
tasks, slot violations (peak runs per pool against its slots) and the recovery time after each
kill (restart -> the restarted daemon's first task start). Exit status 1 if any is non-zero.

With --postgres the queue is a database on a throwaway PostgreSQL cluster (tests/support/pg.py;
three daemons unless --daemons says otherwise), and the faults also include
pg_terminate_backend of one daemon's connections and `pg_ctl restart -m immediate`, with the
time from each to the next task start.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.daemons import DaemonSet  # noqa: E402
from tests.support.killsoak import Figures, Plan, run_plan, write_plan_config  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402
from tests.support.pgfaults import PgFaults  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="kill -9 soak, judged at the host side.")
    parser.add_argument("--minutes", type=float, default=5.0, help="time over which kills run")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument(
        "--daemons",
        default=None,
        help="comma-separated modes, one daemon each (async; with --postgres async,async,legacy)",
    )
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL queue")
    parser.add_argument("--terminations", type=int, default=30, help="with --postgres")
    parser.add_argument("--server-restarts", type=int, default=5, help="with --postgres")
    parser.add_argument("--lease", type=float, default=1.0, help="lease_seconds")
    parser.add_argument("--long-every", type=int, default=25, help="every n-th task runs long")
    parser.add_argument("--long-seconds", type=float, default=2.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="keep the files here")
    return parser.parse_args(argv)


def plan_of(args: argparse.Namespace, db: str = "") -> Plan:
    daemons = args.daemons or ("async,async,legacy" if db else "async")
    modes = tuple(f"--{mode.strip()}" for mode in daemons.split(",") if mode.strip())
    return Plan(
        tasks=args.tasks,
        kills=args.kills,
        seconds=args.minutes * 60,
        long_every=args.long_every,
        long_s=args.long_seconds,
        lease_s=args.lease,
        modes=modes,
        seed=args.seed,
        settle_s=max(120.0, args.tasks * 0.05),
        db=db,
        terminations=args.terminations if db else 0,
        server_restarts=args.server_restarts if db else 0,
    )


def recovery_line(figures: Figures) -> str:
    lines = [_recovery("kill", figures.recovery_s)]
    lines += [_recovery(fault, times) for fault, times in figures.fault_recovery_s.items()]
    return "\n".join(lines)


def _recovery(fault: str, times: list[float | None]) -> str:
    known = [r for r in times if r is not None]
    if not known:
        return f"recovery after each {fault}: no task started after any"
    return (
        f"recovery after each {fault} (s): p50 {statistics.median(known):.2f}, "
        f"max {max(known):.2f}, without a task start after it {len(times) - len(known)}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ygg-soak-") as scratch:
        directory = args.dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        if args.postgres:
            with PgCluster() as cluster:
                plan = plan_of(args, cluster.create_database("soak"))
                figures = soak(directory, plan, PgFaults(cluster))
        else:
            plan = plan_of(args)
            figures = soak(directory, plan, None)
    print(figures.summary())
    print(recovery_line(figures))
    bad = (
        figures.lost
        or figures.duplicates
        or figures.stale
        or figures.stuck
        or figures.slot_violations
    )
    return 1 if bad else 0


def soak(directory: Path, plan: Plan, server: PgFaults | None) -> Figures:
    config = write_plan_config(directory, plan)
    with DaemonSet(config) as daemons:
        return run_plan(directory, plan, daemons, server)


if __name__ == "__main__":
    sys.exit(main())
