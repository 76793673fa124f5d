"""Whether a daemon registered on this machine still runs.

A process is named by its pid and when it started. The start is recorded in clock ticks since
boot (`starttime`, field 22 of /proc/PID/stat), which no step of the wall clock moves, with the
boot's id, since ticks restart at every boot. A wall-clock start time (what psutil derives from
the boot time) moves when ntpd or an operator steps the clock, so a live daemon would look dead
and lose its commands and its tasks. Rows written before the ticks were recorded keep the old
wall-clock rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from ygg.store.model import US, Daemon

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
STARTTIME_FIELD = 22  # 1-based, as proc(5) numbers the fields of /proc/PID/stat
WALL_CLOCK_TOLERANCE_US = US // 10  # the old rule, for rows without ticks


@dataclass(frozen=True)
class ProcessStart:
    """How a daemon names its own start when it registers."""

    wall_us: int  # wall clock, microseconds: shown to people, and the fallback rule
    ticks: int | None  # clock ticks since boot; None where /proc cannot tell
    boot_id: str | None


def parse_start_ticks(stat: str) -> int:
    """`starttime` from the text of /proc/PID/stat. The second field, the command name in
    parentheses, may itself hold spaces and parentheses, so fields are counted after the
    last ')'; the first field after it is the third (the state)."""
    _, paren, rest = stat.rpartition(")")
    if not paren:
        raise ValueError(f"not a /proc/PID/stat line: {stat[:80]!r}")
    return int(rest.split()[STARTTIME_FIELD - 3])


def start_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot; None if it does not exist (or
    /proc cannot be read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse_start_ticks(stat)


def boot_id() -> str | None:
    try:
        return BOOT_ID_PATH.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def own_start(pid: int) -> ProcessStart:
    wall_us = int(psutil.Process(pid).create_time() * US)
    return ProcessStart(wall_us, start_ticks(pid), boot_id())


def is_alive(daemon: Daemon, hostname: str, this_boot: str | None) -> bool:
    """Whether `daemon`, registered on `hostname`, still runs: same pid, same start."""
    if daemon.hostname != hostname:
        return False  # another machine: only its lease expiry can tell
    if daemon.pid_start_ticks is not None and daemon.boot_id is not None and this_boot:
        if daemon.boot_id != this_boot:
            return False  # registered before the machine rebooted
        return start_ticks(daemon.pid) == daemon.pid_start_ticks
    try:
        started_us = int(psutil.Process(daemon.pid).create_time() * US)
    except psutil.Error:
        return False
    return abs(started_us - daemon.pid_started_us) < WALL_CLOCK_TOLERANCE_US
