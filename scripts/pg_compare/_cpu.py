"""CPU time of a PostgreSQL server and of this process, for the benches' CPU-per-task figures.

Standard library only (it runs in the comparison venv too); Linux's /proc.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # the fields after the command's name


def server_cpu_s(postmaster_pid: int) -> float:
    """User + system CPU of a server so far: the postmaster, its live children (backends,
    WAL writer, …), and the children it has reaped (backends that have exited)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # gone meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster_pid:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif ppid == postmaster_pid:
            total += int(fields[11]) + int(fields[12])
    return total * _TICK_S


def cpu_of_s(pid: int) -> float:
    """User + system CPU of process `pid` so far (say, one server backend)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def process_cpu_s() -> float:
    """User + system CPU of this process so far."""
    times = os.times()
    return times.user + times.system
