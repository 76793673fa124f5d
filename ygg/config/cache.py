"""A cache of the parsed configuration files, so a command skips `tomllib` (a sixth of
`ygg submit`'s start-up) when no file changed.

It holds what the files say — the merged tables and the file each key came from — never a
validated Config: validation runs on every load, so a newer ygg never trusts an older one's
verdict. An entry is used only if every file it was read from (the main file, each drop-in,
and the list of drop-ins) has the same inode, size, mtime and ctime as when it was read.
Files changed within the last two seconds are not cached: a second edit within the
file system's timestamp granularity could leave the stamps as they were ("racy git").
Anything unreadable, corrupt or foreign is ignored and the files are read. An entry is
readable by its user alone (a pool's `env` table may hold a token); credentials files
(ygg/config/credentials.py) are read when used, never cached.

    $XDG_CACHE_HOME/ygg/config-<hash of the main file's path>.marshal  (~/.cache by default)
"""

from __future__ import annotations

import marshal
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Stamp = tuple[str, int, int, int, int]

FORMAT = 1  # bump when the entry's shape changes
RACY_NS = 2_000_000_000


def stamps(paths: list[str]) -> list[Stamp] | None:
    """What identifies each file's content without reading it; None if one is missing."""
    found = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return None
        found.append((path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return found


def _entry_path(main: str) -> str | None:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    digest = 0xCBF29CE484222325  # FNV-1a: stable across runs, unlike hash(); no hashlib import
    for byte in main.encode("utf-8", "surrogateescape"):
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return os.path.join(base, "ygg", f"config-{digest:016x}.marshal")


def read(main: str, key: list[Stamp]) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The merged tables and key sources cached for `main` under exactly `key`, else None."""
    path = _entry_path(main)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            entry = marshal.loads(f.read())  # marshal.load(f) reads the file in small pieces
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if (
        isinstance(entry, tuple)
        and len(entry) == 5
        and entry[:3] == (FORMAT, main, key)
        and isinstance(entry[3], dict)
        and isinstance(entry[4], dict)
    ):
        return entry[3], entry[4]
    return None


def write(main: str, key: list[Stamp], merged: dict[str, Any], sources: dict[str, str]) -> None:
    """Stores an entry if every file is older than the racy window; failures are ignored."""
    path = _entry_path(main)
    if path is None or any(stamp[3] > time.time_ns() - RACY_NS for stamp in key):
        return
    try:
        data = marshal.dumps((FORMAT, main, key, merged, sources))
    except ValueError:  # a TOML date or time: not plain data, read the files each time
        return
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        # Readable by this user alone: a pool's `env` table may hold a token.
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError:
        import contextlib  # here: every command imports this module, few write an entry

        with contextlib.suppress(OSError):
            os.unlink(temporary)
