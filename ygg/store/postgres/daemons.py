"""The daemons sharing a queue: who they are, where to nudge them, whether they still beat."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ygg.store.model import BreakerState, Daemon, HostReport
from ygg.store.postgres.db import Database, atomic

_ESCAPED = re.compile(r"\\([\\0])")


def stored_nudge(address: str) -> str:
    r"""A nudge address as PostgreSQL text can hold it: an abstract socket's NUL is written
    `\0`, and a backslash `\\`."""
    return address.replace("\\", "\\\\").replace("\0", "\\0")


def nudge_of(stored: str) -> str:
    return _ESCAPED.sub(lambda m: "\0" if m.group(1) == "0" else "\\", stored)


class DaemonRegistry(Database):
    @atomic
    def register_daemon(
        self,
        hostname: str,
        pid: int,
        pid_started_us: int,
        nudge: str,
        mode: str,
        now_us: int,
        *,
        pid_start_ticks: int | None = None,
        boot_id: str | None = None,
    ) -> int:
        with self.write() as conn:
            now = self.now(conn, now_us)
            row = conn.execute(
                "INSERT INTO ygg.daemons (hostname, pid, pid_started_us, nudge, mode, "
                "started_us, heartbeat_us, pid_start_ticks, boot_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    hostname,
                    pid,
                    pid_started_us,
                    stored_nudge(nudge),
                    mode,
                    now,
                    now,
                    pid_start_ticks,
                    boot_id,
                ),
            ).fetchone()
            assert row is not None
            daemon_id: int = row[0]
            self.notify("peers")  # the others count this daemon in at once
            return daemon_id

    def unregister_daemon(self, daemon_id: int) -> None:
        self.forget_daemons([daemon_id])

    @atomic
    def forget_daemons(self, daemon_ids: Sequence[int]) -> None:
        ids = list(daemon_ids)
        with self.write() as conn:
            conn.execute("DELETE FROM ygg.daemons WHERE id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM ygg.breakers WHERE daemon = ANY(%s)", (ids,))
            conn.execute("DELETE FROM ygg.host_telemetry WHERE daemon = ANY(%s)", (ids,))
            conn.execute("DELETE FROM ygg.daemon_slots WHERE daemon = ANY(%s)", (ids,))

    @atomic
    def set_config_error(self, daemon_id: int, error: str | None) -> None:
        """Why the daemon's last reload was refused (None: the running configuration is current)."""
        with self.write() as conn:
            conn.execute(
                "UPDATE ygg.daemons SET config_error = %s WHERE id = %s", (error, daemon_id)
            )

    @atomic
    def set_breaker(
        self, daemon_id: int, pool: str, state: str, reason: str | None, now_us: int
    ) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO ygg.breakers (daemon, pool, state, reason, since_us) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (daemon, pool) DO UPDATE SET "
                "state = excluded.state, reason = excluded.reason, since_us = excluded.since_us",
                (daemon_id, pool, state, reason, self.now(conn, now_us)),
            )

    def breakers(self) -> list[BreakerState]:
        with self.read() as conn:
            rows = conn.execute(
                "SELECT daemon, pool, state, reason, since_us FROM ygg.breakers "
                'ORDER BY pool COLLATE "C", daemon'
            ).fetchall()
        return [BreakerState(*row) for row in rows]

    @atomic
    def set_telemetry(
        self, daemon_id: int, pool: str, data: Mapping[str, Any] | None, now_us: int
    ) -> None:
        with self.write() as conn:
            if data is None:
                conn.execute(
                    "DELETE FROM ygg.host_telemetry WHERE daemon = %s AND pool = %s",
                    (daemon_id, pool),
                )
                return
            conn.execute(
                "INSERT INTO ygg.host_telemetry (daemon, pool, data, since_us) "
                "VALUES (%s, %s, %s::jsonb, %s) ON CONFLICT (daemon, pool) DO UPDATE SET "
                "data = excluded.data, since_us = excluded.since_us",
                (daemon_id, pool, json.dumps(data, ensure_ascii=False), self.now(conn, now_us)),
            )

    def telemetry(self) -> list[HostReport]:
        with self.read() as conn:
            rows = conn.execute(
                "SELECT daemon, pool, data::text, since_us FROM ygg.host_telemetry "
                'ORDER BY pool COLLATE "C", daemon'
            ).fetchall()
        return [HostReport(d, p, json.loads(data), since) for d, p, data, since in rows]

    def daemons(self) -> list[Daemon]:
        with self.read() as conn:
            rows = conn.execute(
                "SELECT id, hostname, pid, pid_started_us, nudge, mode, heartbeat_us, "
                "config_error, pid_start_ticks, boot_id FROM ygg.daemons ORDER BY id"
            ).fetchall()
        return [Daemon(*row)._replace(nudge=nudge_of(row[4])) for row in rows]
