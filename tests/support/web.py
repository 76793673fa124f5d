"""A real `ygg loop` with its HTTP server on 127.0.0.1:0, for API, event and browser tests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.daemons import DaemonSet, wait_until, write_config

TOKEN = "s3cret-token"
SIM_POOL = '\n[pools.sim]\nbackend = "sim"\nseconds = 0\nslots = 2\nkinds = ["general"]\n'


@dataclass
class WebDaemon:
    daemons: DaemonSet
    config: Path
    base: str
    token: str | None

    def client(self, *, auth: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10, trust_env=False)


def server_port(daemons: DaemonSet, process: subprocess.Popen[bytes] | None = None) -> int | None:
    """The port a daemon's status server took (the last one started, by default)."""
    for line in daemons.log_of(process or daemons.started[-1]).splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "status_server_started":
            return int(event["port"])
    return None


@contextmanager
def web_daemon(
    directory: Path,
    pools: str = SIM_POOL,
    *,
    token: str | None = TOKEN,
    legacy: bool = False,
    daemon: str = "",
) -> Iterator[WebDaemon]:
    config = write_config(directory, pools, daemon=f'status_listen = "127.0.0.1:0"\n{daemon}')
    env = {"YGG_STATUS_TOKEN": token or "", "CREDENTIALS_DIRECTORY": str(directory / "none")}
    with DaemonSet(config, env=env) as daemons:
        process = daemons.start(*(["--legacy"] if legacy else []))
        assert wait_until(lambda: server_port(daemons) is not None, 20), daemons.log_of(process)
        yield WebDaemon(daemons, config, f"http://127.0.0.1:{server_port(daemons)}", token)
        assert daemons.stop(process) == 0, daemons.log_of(process)
