"""Adaptive slots in a real `ygg loop` on the sim backend's host model: the limit starts at
min_slots, rises toward the knee, backs off on a 503, is stored in the queue, and shows in
`ygg status`, /status and /metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.web import server_port

# Two hosts: one whose requests slow past 3 at once, one that answers 503 past 2.
POOLS = """
[pools.knee]
backend = "sim"
kinds = ["slow"]
slots = 12
adaptive = true
min_slots = 1
sim_knee = 3

[pools.full]
backend = "sim"
kinds = ["full"]
slots = 12
adaptive = true
min_slots = 1
sim_capacity = 2
sim_overload = "503"
max_attempts = 100
"""
TASKS_PER_POOL = 300


def submit_all(config: Path, tmp_path: Path) -> None:
    batch = tmp_path / "tasks.jsonl"
    lines = [
        {"title": f"{kind} {i}", "kind": kind, "params": {"seconds": "0.02", "tokens": "40"}}
        for i in range(TASKS_PER_POOL)
        for kind in ("slow", "full")
    ]
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run_ygg(config, "submit", "--jsonl", str(batch)).returncode == 0


def limit_changes(log: str) -> dict[str, list[dict[str, Any]]]:
    changes: dict[str, list[dict[str, Any]]] = {"knee": [], "full": []}
    for line in log.splitlines():
        event = json.loads(line)
        if event["event"] == "pool_limit_changed":
            changes[event["pool"]].append(event)
    return changes


def test_the_limit_climbs_to_the_knee_and_backs_off_on_503(tmp_path: Path) -> None:
    config = write_config(tmp_path, POOLS, daemon='status_listen = "127.0.0.1:0"')
    submit_all(config, tmp_path)
    with DaemonSet(config) as daemons:
        daemon = daemons.start()

        def settled() -> bool:
            changes = limit_changes(daemons.log_of(daemon))
            knee = [c["limit"] for c in changes["knee"]]
            backed_off = [c for c in changes["full"] if "503" in c["reason"]]
            return len(knee) >= 4 and bool(backed_off)

        assert wait_until(lambda: server_port(daemons, daemon) is not None, 10)
        assert wait_until(settled, 60), daemons.log_of(daemon)[-3000:]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{server_port(daemons, daemon)}", timeout=5
        ) as http:
            # Once the queue is drained the limits stay put: every view must agree.
            done = 2 * TASKS_PER_POOL
            assert wait_until(lambda: http.get("/status").json()["tasks"]["done"] == done, 60)
            pools = {p["name"]: p for p in http.get("/status").json()["pools"]}
            metrics = text_string_to_metric_families(http.get("/metrics").text)
            gauge = next(f for f in metrics if f.name == "ygg_pool_limit")
        # The queue holds the same limit for every daemon on it (`ygg status` reads it there);
        # the daemon stores each move just after applying it.
        applied = {name: p["limit"] for name, p in pools.items()}

        def stored() -> dict[str, tuple[int, str]]:
            cli = json.loads(run_ygg(config, "status", "--json").stdout)
            return {p["name"]: (p["limit"], p["limit_source"]) for p in cli["pools"]}

        assert wait_until(
            lambda: stored() == {name: (n, "adaptive") for name, n in applied.items()}, 15
        ), stored()
        assert daemons.stop(daemon) == 0
    changes = limit_changes(daemons.log_of(daemon))
    knee = changes["knee"]
    assert knee[0]["was"] == 1  # it starts at min_slots
    assert max(c["limit"] for c in knee) >= 3  # climbs to the knee
    assert all(c["limit"] <= 12 for c in knee)  # never past its slots
    full = changes["full"]
    refused = [c for c in full if "503" in c["reason"]]
    assert refused and all(c["limit"] < c["was"] for c in refused)
    assert min(c["limit"] for c in refused) <= 2  # below what the host refused at
    # The daemon's /status and /metrics (and the queue, above) show the limit it last applied.
    last = {pool: events[-1]["limit"] for pool, events in changes.items()}
    assert {name: p["limit"] for name, p in pools.items()} == last
    assert pools["knee"]["slots"] == 12 and last["knee"] >= 2
    assert {s.labels["pool"]: s.value for s in gauge.samples} == last


def test_two_daemons_share_one_adaptive_limit(tmp_path: Path) -> None:
    """Each daemon's controller moves the queue's one limit; the other follows it (a nudge),
    so once the queue is drained both apply what the queue holds, and both logged moves."""
    knee_only = POOLS.split("[pools.full]", maxsplit=1)[0]
    config = write_config(tmp_path, knee_only, daemon='status_listen = "127.0.0.1:0"')
    lines = [{"title": f"s {i}", "kind": "slow", "params": {"seconds": "0.02", "tokens": "40"}}
             for i in range(2 * TASKS_PER_POOL)]  # fmt: skip
    batch = tmp_path / "tasks.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run_ygg(config, "submit", "--jsonl", str(batch)).returncode == 0
    with DaemonSet(config) as daemons:
        both = [daemons.start(), daemons.start()]
        assert wait_until(lambda: all(server_port(daemons, d) for d in both), 15)
        ports = [server_port(daemons, d) for d in both]

        def views() -> list[int]:
            return [
                httpx.get(f"http://127.0.0.1:{port}/status", timeout=5).json()["pools"][0]["limit"]
                for port in ports
            ]

        def drained() -> bool:
            cli = json.loads(run_ygg(config, "status", "--json").stdout)
            return bool(cli["tasks"]["done"] == len(lines))

        assert wait_until(drained, 90)
        cli = json.loads(run_ygg(config, "status", "--json").stdout)
        stored = cli["pools"][0]["limit"]
        assert cli["pools"][0]["limit_source"] == "adaptive"
        assert wait_until(lambda: views() == [stored, stored], 15), (views(), stored)
        for daemon in both:
            assert daemons.stop(daemon) == 0
    moves = [limit_changes(daemons.log_of(d))["knee"] for d in both]
    assert all(moves), "each daemon applied moves"
    assert max(c["limit"] for m in moves for c in m) >= 3  # climbed toward the knee
    # a daemon follows the other's moves, not only its own
    assert any(c["reason"] == "shared" for m in moves for c in m)
