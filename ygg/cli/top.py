"""`ygg top`: a live view of the pools and running tasks, refreshed until q or Ctrl-C.

Loaded only when `ygg top` runs: httpx and rich stay out of every other command's start-up.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ygg.config import Config
from ygg.store.model import now_us

if TYPE_CHECKING:
    import httpx

    from ygg.ops.snapshot import Snapshot
    from ygg.store.base import Store

STATUS_TIMEOUT_S = 0.5  # a daemon on loopback answers in milliseconds; past this, read the DB
WaitForQuit = Callable[[float], bool]
SNAPSHOT_KEYS = {"daemon", "pools", "tasks", "running"}


def status_url(listen: str) -> str:
    """The /status URL for `daemon.status_listen`; a wildcard bind is reached on loopback."""
    from ygg.ops.http_status import parse_listen

    host, port = parse_listen(listen)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}/status" if ":" in host else f"http://{host}:{port}/status"


class Source:
    """Where the view comes from: the daemon's /status when one answers, else the database."""

    def __init__(self, config: Config, open_store: Callable[[], Store], ask_daemon: bool):
        import httpx

        from ygg.ops.http_status import status_token

        self.config = config
        self._open_store = open_store
        self._store: Store | None = None
        self.url = status_url(config.daemon.status_listen) if ask_daemon else None
        token = status_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http: httpx.Client = httpx.Client(
            timeout=STATUS_TIMEOUT_S, headers=headers, trust_env=False
        )

    def fetch(self) -> tuple[Snapshot, str]:
        """The snapshot and a line saying where it came from."""
        import httpx

        from ygg.ops.snapshot import snapshot_from_store

        why = "no daemon asked (--db given)"
        if self.url is not None:
            try:
                response = self._http.get(self.url)
                why = f"{self.url} answered {response.status_code}"
                data: Any = response.json() if response.status_code == 200 else None
                # Something else may listen on that port (another queue's daemon, or not ygg
                # at all): take only our shape, and only from a daemon on this queue.
                if _has_our_shape(data):
                    queue = data["daemon"].get("queue")
                    if queue == self.config.daemon.db:
                        return data, f"live from {self.url}"
                    why = f"{self.url} serves another queue ({queue})"
            except (httpx.HTTPError, ValueError):
                why = f"no daemon answered on {self.url}"
        if self._store is None:
            self._store = self._open_store()
        return snapshot_from_store(self._store, self.config), f"from the database ({why})"

    def close(self) -> None:
        self._http.close()


def _has_our_shape(data: Any) -> bool:
    return (
        isinstance(data, dict) and data.keys() >= SNAPSHOT_KEYS and isinstance(data["daemon"], dict)
    )


def _sleep_only(seconds: float) -> bool:
    time.sleep(seconds)
    return False


@contextlib.contextmanager
def quit_keys() -> Iterator[WaitForQuit]:
    """Yields wait(seconds) -> True once q was pressed. On a terminal, stdin is in cbreak mode
    (keys arrive unbuffered, Ctrl-C still interrupts) until the block ends; otherwise only
    Ctrl-C quits."""
    if not sys.stdin.isatty():
        yield _sleep_only
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([fd], [], [], left)
            if readable and os.read(fd, 32).lower().find(b"q") >= 0:
                return True
        return False

    try:
        tty.setcbreak(fd)
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_live(fetch: Callable[[], tuple[Snapshot, str]], interval_s: float) -> None:
    from rich.console import Console
    from rich.live import Live

    from ygg.ops.top_view import render_top

    console = Console()
    with (
        quit_keys() as wait,
        Live(console=console, auto_refresh=False, screen=console.is_terminal) as live,
    ):
        while True:
            snapshot, source = fetch()
            live.update(render_top(snapshot, source=source, now_us=now_us()), refresh=True)
            if wait(interval_s):
                return
