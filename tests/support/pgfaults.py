"""The database server's faults for the kill -9 scenario (killsoak.py) on PostgreSQL:
pg_terminate_backend of one daemon's connections, and `pg_ctl restart -m immediate`."""

from __future__ import annotations

import psutil

from tests.support.pg import PgCluster


def daemon_ports(daemon_pid: int, server_port: int) -> set[int]:
    """The local TCP ports of `daemon_pid`'s connections to the server: how pg_stat_activity
    (client_port) tells its backends from the other daemons' (they all say `ygg`)."""
    try:
        connections = psutil.Process(daemon_pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return set()
    return {c.laddr.port for c in connections if c.raddr and c.raddr.port == server_port}


class PgFaults:
    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster

    def terminate(self, daemon_pid: int) -> int:
        """Ends every connection of one daemon (its store's, its reader's, its LISTEN one),
        whatever each is doing: a claim, a renewal, an outcome, or nothing."""
        ports = daemon_ports(daemon_pid, self.cluster.port)
        if not ports:
            return 0
        return self.cluster.terminate_backends(lambda b: b.client_port in ports)

    def restart(self) -> None:
        """A crash of the server and its recovery from the WAL."""
        self.cluster.restart("immediate")
