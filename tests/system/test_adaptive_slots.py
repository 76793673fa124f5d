"""Adaptive slots in a real `ygg loop` on the sim backend's host model: the limit starts at
min_slots, rises toward the knee, backs off on a 503, and shows in /status and /metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config

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

        def port() -> int | None:
            for line in daemons.log_of(daemon).splitlines():
                event = json.loads(line)
                if event["event"] == "status_server_started":
                    return int(event["port"])
            return None

        def settled() -> bool:
            changes = limit_changes(daemons.log_of(daemon))
            knee = [c["limit"] for c in changes["knee"]]
            backed_off = [c for c in changes["full"] if "503" in c["reason"]]
            return len(knee) >= 4 and bool(backed_off)

        assert wait_until(lambda: port() is not None, 10)
        assert wait_until(settled, 60), daemons.log_of(daemon)[-3000:]
        with httpx.Client(base_url=f"http://127.0.0.1:{port()}", timeout=5) as http:
            # Once the queue is drained the limits stay put: every view must agree.
            done = 2 * TASKS_PER_POOL
            assert wait_until(lambda: http.get("/status").json()["tasks"]["done"] == done, 60)
            pools = {p["name"]: p for p in http.get("/status").json()["pools"]}
            metrics = text_string_to_metric_families(http.get("/metrics").text)
            gauge = next(f for f in metrics if f.name == "ygg_pool_limit")
        cli = json.loads(run_ygg(config, "status", "--json").stdout)
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
    # The daemon's /status and /metrics show the limit it last applied. (`ygg status --json`
    # reads the store, which holds no limits yet: it shows the slots until it does.)
    last = {pool: events[-1]["limit"] for pool, events in changes.items()}
    assert {name: p["limit"] for name, p in pools.items()} == last
    assert pools["knee"]["slots"] == 12 and last["knee"] >= 2
    assert {s.labels["pool"]: s.value for s in gauge.samples} == last
    assert {p["name"]: p["limit"] for p in cli["pools"]} == {"knee": 12, "full": 12}
