"""A real Prometheus scrapes a real `ygg loop`, evaluates deploy/prometheus/ygg-alerts.yml, and
YggBreakerOpen fires once the pool's host goes down (connection refused).

Debian's `prometheus` binary on 127.0.0.1, scraping and evaluating every second; the alert's
`for:` is shortened in a copy of the rules. Skipped without the binary unless
YGG_TEST_PROMETHEUS=1, which makes that a failure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.hosts import FakeHost
from tests.support.prometheus import RULES, PrometheusServer, require

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(150)]

ALERT = "YggBreakerOpen"
FIRING_TIMEOUT_S = 60.0
SCRAPE_TIMEOUT_S = 30.0


def rules_with_short_for(directory: Path, alert: str, for_: str) -> Path:
    """A copy of the shipped rules in which `alert` holds for `for_` instead."""
    rules = yaml.safe_load(RULES.read_text())
    found = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert]
    assert len(found) == 1, f"{alert} in {RULES}"
    found[0]["for"] = for_
    path = directory / "ygg-alerts.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def prometheus_config(target: str, rules: Path) -> str:
    return json.dumps(  # JSON is YAML
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": "ygg",  # the job the rules expect (deploy/README.md)
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
    )


def status_port(daemons: DaemonSet, daemon: Any) -> int | None:
    for line in daemons.log_of(daemon).splitlines():
        event = json.loads(line)
        if event.get("event") == "status_server_started":
            return int(event["port"])
    return None


def alerts_named(prom: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [a for a in prom.get("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name]


def breaker_samples(prom: PrometheusServer) -> dict[str, float]:
    result = prom.get("/api/v1/query?query=ygg_pool_breaker_state")["result"]
    return {r["metric"]["pool"]: float(r["value"][1]) for r in result}


def test_breaker_alert_fires_when_the_host_goes_down(tmp_path: Path) -> None:
    require("prometheus")
    host = FakeHost("ollama").start()
    try:
        pool = (
            f'\n[pools.gpu]\nbackend = "ollama"\nurl = "{host.url}"\nmodel = "m"\nslots = 1\n'
            'kinds = ["general"]\nbreaker_failures = 2\nbreaker_cooldown_seconds = 60\n'
        )
        config = write_config(tmp_path, pool, daemon='status_listen = "127.0.0.1:0"')
        assert run_ygg(config, "submit", "before").returncode == 0
        with DaemonSet(config) as daemons:
            daemon = daemons.start()
            assert wait_until(lambda: status_port(daemons, daemon) is not None, 15)
            target = f"127.0.0.1:{status_port(daemons, daemon)}"
            assert host.wait_for_requests(1, timeout_s=15)  # the host answers: closed
            rules = rules_with_short_for(tmp_path, ALERT, "2s")
            prom_dir = tmp_path / "prometheus"
            prom_dir.mkdir()
            with PrometheusServer(prometheus_config(target, rules), prom_dir) as prom:
                # Scraped, rules loaded, and with the host up the breaker alert is quiet.
                assert wait_until(lambda: breaker_samples(prom) == {"gpu": 0.0}, SCRAPE_TIMEOUT_S)
                groups = prom.get("/api/v1/rules")["groups"]
                loaded = {r["name"]: r for g in groups for r in g["rules"]}
                assert loaded[ALERT]["duration"] == 2
                time.sleep(3)  # longer than `for:`: a wrong expression would fire by now
                assert alerts_named(prom, ALERT) == []

                host.stop()  # connection refused from now on
                for i in range(3):
                    assert run_ygg(config, "submit", f"after-{i}").returncode == 0

                def firing() -> bool:
                    return any(a["state"] == "firing" for a in alerts_named(prom, ALERT))

                assert wait_until(firing, FIRING_TIMEOUT_S, tick_s=0.5), (
                    f"{ALERT} did not fire: {alerts_named(prom, ALERT)}\n"
                    f"breakers: {breaker_samples(prom)}\n{prom.log()[-3000:]}"
                )
                [alert] = alerts_named(prom, ALERT)
                assert alert["labels"]["pool"] == "gpu"
                assert alert["labels"]["severity"] == "warning"
                assert alert["labels"]["instance"] == target
                assert alert["annotations"]["summary"] == (
                    "Pool gpu: circuit breaker open for 5 minutes"
                )
            status = httpx.get(f"http://{target}/status", timeout=5, trust_env=False).json()
            [row] = status["pools"]
            assert row["breaker"] == "open"
            assert daemons.stop(daemon) == 0
    finally:
        host.stop()
