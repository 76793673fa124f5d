"""`GET /api/events` from a real daemon: task and pool changes as server-sent events, and a
stalled client dropped while the daemon drains on."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from tests.support.daemons import run_ygg, wait_until
from tests.support.web import TOKEN, web_daemon


class Listener:
    """Reads an event stream on a thread, keeping every event."""

    def __init__(self, base: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.ended = threading.Event()
        self.opened = threading.Event()
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        try:
            while chunk := self.sock.recv(65536):
                buffer += chunk
                self.opened.set()
                for line in buffer.split(b"\n")[:-1]:
                    if line.startswith(b"data: "):
                        self.events.append(json.loads(line[6:]))
                buffer = buffer.rsplit(b"\n", 1)[-1]
        except OSError:
            pass  # closed by the test
        finally:
            self.ended.set()

    def statuses(self, task_id: int) -> list[str | None]:
        return [
            e["status"] for e in list(self.events) if e["type"] == "task" and e["id"] == task_id
        ]

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


def test_a_client_sees_a_task_go_queued_running_done(tmp_path: Path) -> None:
    pools = '\n[pools.sim]\nbackend = "sim"\nseconds = 0.3\nslots = 1\nkinds = ["general"]\n'
    with web_daemon(tmp_path, pools) as web, web.client() as http:
        listener = Listener(web.base)
        try:
            assert listener.opened.wait(10)  # subscribed: the stream's first line came
            task = http.post("/api/tasks", json={"title": "watched"}).json()
            assert wait_until(lambda: "done" in listener.statuses(task["id"]), 15), listener.events
            assert listener.statuses(task["id"]) == ["queued", "running", "done"]
            pools_seen = [e for e in listener.events if e["type"] == "pool"]
            assert {(e["running"], e["slots"], e["breaker"]) for e in pools_seen} == {
                (1, 1, "closed"),
                (0, 1, "closed"),
            }
            # A submit from the CLI nudges the daemon, which tells the watchers to look again.
            assert run_ygg(web.config, "submit", "from the cli").returncode == 0
            assert wait_until(lambda: any(e["type"] == "queue" for e in listener.events), 10)
        finally:
            listener.close()


def test_a_stalled_client_is_dropped_and_the_daemon_drains_on(tmp_path: Path) -> None:
    tasks = 3000
    with web_daemon(tmp_path) as web:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # and never read
        host, port = web.base.removeprefix("http://").split(":")
        stalled.connect((host, int(port)))
        stalled.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        healthy = Listener(web.base)
        try:
            assert healthy.opened.wait(10)
            log = web.daemons.log_of
            process = web.daemons.started[-1]
            lines = b"".join(b'{"title": "t%d"}\n' % i for i in range(tasks))
            (tmp_path / "tasks.jsonl").write_bytes(lines)
            assert (
                run_ygg(web.config, "submit", "--jsonl", str(tmp_path / "tasks.jsonl")).returncode
                == 0
            )
            with web.client() as http:
                assert wait_until(
                    lambda: http.get("/api/status").json()["tasks"]["done"] == tasks, 60
                )
            assert wait_until(lambda: "event_stream_dropped" in log(process), 10)
            assert log(process).count("event_stream_dropped") == 1  # the stalled one only
            assert wait_until(lambda: len(healthy.statuses(tasks)) >= 2, 10)
            assert healthy.statuses(tasks)[-1] == "done"
        finally:
            healthy.close()
            stalled.close()
