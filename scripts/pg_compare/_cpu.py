"""CPU time of a PostgreSQL server and of single processes, for the benches' CPU-per-task
figures; read through psutil, as the daemon's own metrics read it (requirements.txt has it for
the comparison venv).
"""

from __future__ import annotations

import contextlib
import os

import psutil


def cpu_of_s(pid: int) -> float:
    """User + system CPU of process `pid` so far (a daemon, one server backend)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def server_cpu_s(postmaster_pid: int) -> float:
    """User + system CPU of a server so far: the postmaster, its live children (backends,
    WAL writer, …), and the children it has reaped (backends that have exited)."""
    postmaster = psutil.Process(postmaster_pid)
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        with contextlib.suppress(psutil.NoSuchProcess):  # exited meanwhile
            total += cpu_of_s(child.pid)
    return total


def process_cpu_s() -> float:
    """User + system CPU of this process so far."""
    times = os.times()
    return times.user + times.system
