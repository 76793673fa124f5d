"""The daemons sharing a queue: who they are, where to nudge them, whether they still beat."""

from __future__ import annotations

from collections.abc import Sequence

from ygg.store.model import Daemon
from ygg.store.sqlite_db import Database


class DaemonRegistry(Database):
    def register_daemon(
        self, hostname: str, pid: int, pid_started_us: int, nudge: str, mode: str, now_us: int
    ) -> int:
        with self.write() as conn:
            daemon_id: int = conn.execute(
                "INSERT INTO daemons (hostname, pid, pid_started_us, nudge, mode, started_us, "
                "heartbeat_us) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (hostname, pid, pid_started_us, nudge, mode, now_us, now_us),
            ).fetchone()[0]
            return daemon_id

    def unregister_daemon(self, daemon_id: int) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM daemons WHERE id = ?", (daemon_id,))

    def forget_daemons(self, daemon_ids: Sequence[int]) -> None:
        with self.write() as conn:
            conn.execute(
                f"DELETE FROM daemons WHERE id IN ({','.join('?' * len(daemon_ids))})",
                list(daemon_ids),
            )

    def daemons(self) -> list[Daemon]:
        rows = self.conn.execute(
            "SELECT id, hostname, pid, pid_started_us, nudge, mode, heartbeat_us FROM daemons"
        ).fetchall()
        return [Daemon(*row) for row in rows]
