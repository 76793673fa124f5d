"""`ygg loop --legacy` serves the same HTTP app as the async mode: status, metrics, health,
the task API and its events, from uvicorn on a loop in a thread of its own."""

from __future__ import annotations

from pathlib import Path

from tests.support.daemons import wait_until
from tests.support.web import web_daemon
from tests.system.test_web_events import Listener

POOL = '\n[pools.sim]\nbackend = "sim"\nseconds = 0.3\nslots = 1\nkinds = ["general"]\n'


def test_a_legacy_daemon_serves_status_metrics_api_and_events(tmp_path: Path) -> None:
    with web_daemon(tmp_path, POOL, legacy=True) as web, web.client() as http:
        assert http.get("/healthz").status_code == 200
        status = http.get("/status").json()
        assert status["daemon"]["mode"] == "legacy"
        assert [p["name"] for p in status["pools"]] == ["sim"]
        assert "ygg_" in http.get("/metrics").text
        assert http.get("/").headers["content-type"].startswith("text/html")
        listener = Listener(web.base)
        try:
            assert listener.opened.wait(10)
            task = http.post("/api/tasks", json={"title": "legacy"}).json()
            assert wait_until(lambda: "done" in listener.statuses(task["id"]), 15)
            assert listener.statuses(task["id"]) == ["queued", "running", "done"]
            assert {e["running"] for e in listener.events if e["type"] == "pool"} == {0, 1}
        finally:
            listener.close()
        assert http.get(f"/api/tasks/{task['id']}").json()["status"] == "done"
        assert wait_until(lambda: http.get("/api/status").json()["tasks"]["done"] == 1, 10)
        refused = http.post("/api/tasks", json={"title": "x"}, headers={"Authorization": "no"})
        assert refused.status_code == 401
