"""The HTTP API (CONTRACT.md, "HTTP API and dashboard") against a real daemon over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.daemons import run_ygg, wait_until
from tests.support.web import TOKEN, web_daemon


def test_every_post_needs_the_token_and_reads_need_it_once_configured(tmp_path: Path) -> None:
    with web_daemon(tmp_path) as web, web.client(auth=False) as anonymous:
        for path in ("/api/status", "/api/tasks", "/api/tasks/1", "/api/events", "/status"):
            assert anonymous.get(path).status_code == 401, path
        refused = anonymous.post("/api/tasks", json={"title": "x"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer not-it"}
        assert anonymous.post("/api/tasks", json={"title": "x"}, headers=wrong).status_code == 401
        cookie = {"Cookie": f"token={TOKEN}; ygg-status-token={TOKEN}"}
        assert anonymous.post("/api/tasks", json={"title": "x"}, headers=cookie).status_code == 401
        page = anonymous.get("/")  # the page holds no data; it asks for the token itself
        assert page.status_code == 200
        assert "access-control-allow-origin" not in page.headers
        with web.client() as http:
            assert http.get("/api/tasks").json() == []  # nothing was stored


def test_without_a_token_posts_are_refused_and_loopback_reads_open(tmp_path: Path) -> None:
    with web_daemon(tmp_path, token=None) as web, web.client() as http:
        refused = http.post("/api/tasks", json={"title": "x"})
        assert refused.status_code == 403
        assert "YGG_STATUS_TOKEN" in refused.text and "ygg-status-token" in refused.text
        status = http.get("/api/status")
        assert status.status_code == 200
        cli = json.loads(run_ygg(web.config, "status", "--json", "--no-probe").stdout)
        assert set(status.json()) == set(cli)
        assert status.json()["pools"] == cli["pools"]
        probed = http.get("/api/status?probe=1").json()  # as `ygg status --json`, host asked
        assert probed["pools"][0]["health"] == "ok"
        assert http.get("/api/tasks").json() == []


def test_submit_list_show_cancel_retry(tmp_path: Path) -> None:
    pools = '\n[pools.sim]\nbackend = "sim"\nseconds = 30\nslots = 1\nkinds = ["general"]\n'
    with web_daemon(tmp_path, pools) as web, web.client() as http:
        first = http.post("/api/tasks", json={"title": "long", "priority": 1})
        assert first.status_code == 201, first.text
        task = first.json()
        assert (task["title"], task["priority"], task["kind"]) == ("long", 1, "general")
        assert wait_until(lambda: http.get(f"/api/tasks/{task['id']}").json()["status"]
                          == "running", 10)  # fmt: skip
        body = {"title": "waits", "after": [task["id"]], "params": {"n": 3}, "timeout": 5}
        second = http.post("/api/tasks", json=body).json()
        assert (second["status"], second["depends_on"]) == ("waiting", [task["id"]])
        shown = http.get(f"/api/tasks/{second['id']}").json()
        assert shown["params"] == {"n": "3"} and shown["timeout"] == 5
        assert [t["id"] for t in http.get("/api/tasks?status=waiting").json()] == [second["id"]]
        assert len(http.get("/api/tasks?limit=1").json()) == 1
        assert http.get("/api/tasks?kind=other").json() == []
        cancelled = http.post(f"/api/tasks/{task['id']}/cancel")
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
        again = http.post(f"/api/tasks/{task['id']}/cancel")
        assert again.status_code == 409 and "error" in again.json()
        retried = http.post(f"/api/tasks/{task['id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] in ("queued", "running")
        assert http.post(f"/api/tasks/{second['id']}/retry").status_code == 409
        for path in ("/api/tasks/999", "/api/tasks/abc", "/api/tasks/999/cancel"):
            missing = http.post(path) if path.endswith("cancel") else http.get(path)
            assert missing.status_code == 404 and missing.json()["error"], path
        listed = run_ygg(web.config, "list", "--json")
        assert {t["id"] for t in json.loads(listed.stdout)} == {task["id"], second["id"]}
        assert http.post(f"/api/tasks/{task['id']}/cancel").status_code == 200  # a quick stop


def test_invalid_input_is_400_and_stores_nothing(tmp_path: Path) -> None:
    with web_daemon(tmp_path) as web, web.client() as http:
        for body in (
            {"prompt": "no title"},
            {"title": "x", "kind": "nobody-serves-this"},
            {"title": "x", "priority": 9},
            {"title": "x", "colour": "red"},
            {"title": "x", "after": [999]},
            ["not", "an", "object"],
        ):
            answer = http.post("/api/tasks", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["error"].endswith("."), answer.json()
        malformed = http.post("/api/tasks", content=b"{not json")
        assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]
        huge = http.post("/api/tasks", content=b" " * (2 * 1024 * 1024 + 1))
        assert huge.status_code == 413
        assert http.get("/api/tasks?status=nope").status_code == 400
        assert http.get("/api/tasks?limit=x").status_code == 400
        assert http.get("/api/tasks").json() == []


def test_the_look_back_endpoints_answer_from_finished_tasks(tmp_path: Path) -> None:
    with web_daemon(tmp_path) as web, web.client() as http:
        task = http.post("/api/tasks", json={"title": "quick"}).json()
        path = f"/api/tasks/{task['id']}"
        assert wait_until(lambda: http.get(path).json()["status"] == "done", 15)
        hour = http.get("/api/history").json()
        bars = hour["pools"]["sim"]
        assert len(bars) == 12 and sum(bar["done"] for bar in bars) == 1
        assert bars[-1]["wait_max_s"] is not None
        timeline = http.get("/api/timeline?minutes=5").json()
        assert [(a["id"], a["pool"], a["status"]) for a in timeline["attempts"]] == [
            (task["id"], "sim", "done")
        ]
        refused = http.get("/api/history?minutes=0")
        assert refused.status_code == 400 and "minutes" in refused.json()["error"]
        assert http.get("/api/timeline", headers={"Authorization": "Bearer no"}).status_code == 401
