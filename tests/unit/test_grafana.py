"""The Grafana dashboard in deploy/ asks only for metrics that ygg exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.conftest import REPO
from tests.support.metric_names import exported_sample_names

DASHBOARD = REPO / "deploy" / "grafana-ygg.json"
METRIC_NAME = re.compile(r"\bygg_[a-z0-9_]+")


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL string in the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            # A datasource variable's query ("prometheus") is a plugin name, not PromQL.
            promql = key in ("expr", "definition") or (key == "query" and "ygg_" in str(value))
            if promql and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def test_every_expression_names_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = list(expressions(dashboard))
    assert exprs
    exported = exported_sample_names()
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used - exported == set()
    assert all(METRIC_NAME.search(expr) for expr in exprs)


def test_the_dashboard_covers_the_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {name for expr in expressions(dashboard) for name in METRIC_NAME.findall(expr)}
    # Histograms are read through their buckets or counts; everything else by name.
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    wanted = {
        "ygg_tasks", "ygg_pool_slots", "ygg_pool_running", "ygg_pool_queued",
        "ygg_pool_breaker_state", "ygg_attempt_duration_seconds", "ygg_queue_wait_seconds",
        "ygg_claim_duration_seconds", "ygg_leases_renewed_total", "ygg_tasks_reaped_total",
        "ygg_process_resident_memory_bytes", "ygg_process_cpu_seconds_total",
        "ygg_process_open_fds", "ygg_first_token_seconds", "ygg_tokens_per_second",
        "ygg_tokens_total",
    }  # fmt: skip
    assert wanted - families == set()


def test_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & area, panel["title"]
        cells |= area
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
