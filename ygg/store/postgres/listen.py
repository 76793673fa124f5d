"""Wake-ups across machines: LISTEN on a connection of its own, as hints only.

The store sends `NOTIFY ygg, '<nudge>'` (the nudge datagram's text: `wake`, `peers`,
`cancel <id>`) in a short transaction of its own after an operation commits, never inside it
(NOTIFY serialises commits cluster-wide). A notification reaches only listeners connected at
that moment, so after every (re)connect the daemon is told to look at the queue at once
(`on_connected`) before it waits, and its safety poll stays behind both. LISTEN needs a
session of its own: through PgBouncer in transaction mode it does not work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import structlog

from ygg.store.postgres.db import connect_options, describe, first_line

CHANNEL = "ygg"
APPLICATION = "ygg-listen"
WAIT_S = 1.0  # how long one wait for notifications lasts: how soon close() is noticed
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # between attempts to connect again

log = structlog.get_logger("ygg.store")


class NotifyListener:
    """One thread, one connection: `on_payload(text)` for each notification on the channel,
    `on_connected()` after every (re)connect. Call close() to stop it."""

    def __init__(
        self, url: str, on_payload: Callable[[str], None], on_connected: Callable[[], object]
    ) -> None:
        self.url = url
        self.where = describe(url)
        self.on_payload = on_payload
        self.on_connected = on_connected
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ygg-listen", daemon=True)
        self._conn: psycopg.Connection[Any] | None = None

    def start(self) -> NotifyListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._thread.join(WAIT_S * 5)

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                wait_s = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                log.warning(
                    "store_listen_lost", db=self.where, error=first_line(exc), retry_in_s=wait_s
                )
                self._closed.wait(wait_s)
            else:
                failures = 0

    def _listen(self) -> None:
        options = connect_options(self.url, os.environ)
        options["application_name"] = APPLICATION
        with psycopg.connect(self.url, **options) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            log.info("store_listening", db=self.where, channel=CHANNEL)
            self.on_connected()  # what was notified while we were away is in the queue
            while not self._closed.is_set():
                for notify in conn.notifies(timeout=WAIT_S):
                    self._deliver(notify.payload)
                    if self._closed.is_set():
                        return

    def _deliver(self, payload: str) -> None:
        try:
            self.on_payload(payload)
        except Exception:  # a hint gone wrong must not end the listening
            log.exception("store_notification_failed", payload=payload[:80])
