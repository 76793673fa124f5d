"""The daemons sharing a queue: who they are, where to nudge them, whether they still beat."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ygg.store.model import BreakerState, Daemon, HostReport
from ygg.store.sqlite.db import Database, reads


class DaemonRegistry(Database):
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
            daemon_id: int = conn.execute(
                "INSERT INTO daemons (hostname, pid, pid_started_us, nudge, mode, started_us, "
                "heartbeat_us, pid_start_ticks, boot_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (
                    hostname,
                    pid,
                    pid_started_us,
                    nudge,
                    mode,
                    now_us,
                    now_us,
                    pid_start_ticks,
                    boot_id,
                ),
            ).fetchone()[0]
            return daemon_id

    def unregister_daemon(self, daemon_id: int) -> None:
        self.forget_daemons([daemon_id])

    def forget_daemons(self, daemon_ids: Sequence[int]) -> None:
        marks = ",".join("?" * len(daemon_ids))
        with self.write() as conn:
            conn.execute(f"DELETE FROM daemons WHERE id IN ({marks})", list(daemon_ids))
            conn.execute(f"DELETE FROM breakers WHERE daemon IN ({marks})", list(daemon_ids))
            conn.execute(f"DELETE FROM host_telemetry WHERE daemon IN ({marks})", list(daemon_ids))
            conn.execute(f"DELETE FROM daemon_slots WHERE daemon IN ({marks})", list(daemon_ids))

    def set_config_error(self, daemon_id: int, error: str | None) -> None:
        """Why the daemon's last reload was refused (None: the running configuration is current)."""
        with self.write() as conn:
            conn.execute("UPDATE daemons SET config_error = ? WHERE id = ?", (error, daemon_id))

    def set_breaker(
        self, daemon_id: int, pool: str, state: str, reason: str | None, now_us: int
    ) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO breakers (daemon, pool, state, reason, since_us) "
                "VALUES (?, ?, ?, ?, ?)",
                (daemon_id, pool, state, reason, now_us),
            )

    @reads
    def breakers(self) -> list[BreakerState]:
        rows = self.conn.execute(
            "SELECT daemon, pool, state, reason, since_us FROM breakers ORDER BY pool, daemon"
        ).fetchall()
        return [BreakerState(*row) for row in rows]

    def set_telemetry(
        self, daemon_id: int, pool: str, data: Mapping[str, Any] | None, now_us: int
    ) -> None:
        with self.write() as conn:
            if data is None:
                conn.execute(
                    "DELETE FROM host_telemetry WHERE daemon = ? AND pool = ?", (daemon_id, pool)
                )
                return
            conn.execute(
                "INSERT OR REPLACE INTO host_telemetry (daemon, pool, data, since_us) "
                "VALUES (?, ?, ?, ?)",
                (daemon_id, pool, json.dumps(data, ensure_ascii=False), now_us),
            )

    @reads
    def telemetry(self) -> list[HostReport]:
        rows = self.conn.execute(
            "SELECT daemon, pool, data, since_us FROM host_telemetry ORDER BY pool, daemon"
        ).fetchall()
        return [HostReport(d, p, json.loads(data), since) for d, p, data, since in rows]

    @reads
    def daemons(self) -> list[Daemon]:
        rows = self.conn.execute(
            "SELECT id, hostname, pid, pid_started_us, nudge, mode, heartbeat_us, config_error, "
            "pid_start_ticks, boot_id FROM daemons"
        ).fetchall()
        return [Daemon(*row) for row in rows]
