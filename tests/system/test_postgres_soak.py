"""Three daemons on one PostgreSQL database while they are killed with SIGKILL at random and
restarted, their connections are terminated (pg_terminate_backend, leases short so that
claims and renewals are in flight) and the server restarts (`pg_ctl restart -m immediate`):
nothing lost, no task run twice at once, no slot limit passed, no stale result accepted —
judged at the host side (run_host.py logs every run's start, heartbeats and end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet
from tests.support.killsoak import Plan, run_plan, write_plan_config
from tests.support.pg import PgCluster
from tests.support.pgfaults import PgFaults

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(150)]


@pytest.mark.parametrize(
    "faults",
    [
        {"kills": 3, "terminations": 4, "server_restarts": 1, "seed": 3},
        {"kills": 0, "terminations": 6, "server_restarts": 0, "seed": 5},
    ],
    ids=["kill+terminate+restart", "terminations"],
)
def test_three_daemons_on_postgresql_lose_and_duplicate_nothing(
    tmp_path: Path, pg_cluster: PgCluster, pg_url: str, faults: dict[str, int]
) -> None:
    plan = Plan(
        tasks=120,
        seconds=6.0,
        long_every=6,  # many runs outlive a lease: kills and cuts find attempts in flight
        long_s=2.0,
        lease_s=1.0,  # renewals every third of a second: terminations catch them in flight
        modes=("--async", "--async", "--legacy"),
        db=pg_url,
        **faults,
    )
    write_plan_config(tmp_path, plan)
    with DaemonSet(tmp_path / "ygg.toml") as daemons:
        figures = run_plan(tmp_path, plan, daemons, PgFaults(pg_cluster))
    report = figures.summary()
    print(report)
    assert figures.kills == plan.kills, report
    assert figures.terminations == plan.terminations, report
    assert figures.server_restarts == plan.server_restarts, report
    assert figures.terminated_backends >= plan.terminations, report  # each cut something
    assert not figures.stuck, report
    assert not figures.lost, report
    assert not figures.stale, report
    assert not figures.duplicates, report
    assert not figures.slot_violations, report
