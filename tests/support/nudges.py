"""Datagrams to a nudge socket from a real process: as this user, or as user `nobody`.

The sender is a child Python process; for `nobody` it drops root's groups and switches to
nobody's gid and uid before it makes its socket, so the kernel attaches nobody's credentials
to what it sends (done in the child, not with user=: our interpreter may live under root's
home, where nobody cannot run it). Sends block (up to timeout_s each), so when send()
returns, every datagram was queued on the listener's socket; a listener that stopped reading
makes the sender give up and say so.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Sequence

import pytest

SEND_TIMEOUT_S = 5.0

SENDER = """
import os, socket, sys
uid, gid = int(sys.argv[1]), int(sys.argv[2])
if uid >= 0:  # become that user before the socket exists: the kernel sends its credentials
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
address = bytes.fromhex(sys.argv[3]).decode()
rounds, timeout_s = int(sys.argv[4]), float(sys.argv[5])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.settimeout(timeout_s)
sent = 0
try:
    for _ in range(rounds):
        for payload in sys.argv[6:]:
            sock.sendto(bytes.fromhex(payload), address)
            sent += 1
except OSError as exc:
    print(f"gave up after {sent} datagrams: {exc!r}", file=sys.stderr)
print(sent)
"""


def nobody() -> pwd.struct_passwd:
    """User nobody, whom a test process running as root can become; or a skip."""
    if os.geteuid() != 0:
        pytest.skip("sending as user nobody needs root, to switch users; these tests run as root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this machine has no user nobody")


def send(
    address: str,
    payloads: Sequence[bytes],
    *,
    rounds: int = 1,
    as_nobody: bool = False,
    timeout_s: float = SEND_TIMEOUT_S,
) -> int:
    """Sends every payload `rounds` times; returns how many datagrams were sent (fewer only
    if the listener stopped taking them)."""
    uid, gid = (nobody().pw_uid, nobody().pw_gid) if as_nobody else (-1, -1)
    argv = [sys.executable, "-I", "-c", SENDER, str(uid), str(gid), address.encode().hex()]
    result = subprocess.run(
        [*argv, str(rounds), str(timeout_s), *(payload.hex() for payload in payloads)],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


GARBAGE = [
    b"cancel x",
    b"cancel",
    b"cancel -1",
    b"cancel 99999999999999999999999",
    b"",
    b"\x00\xff\xfe\x80 binary",
    b"x" * 600,  # oversized
    b"stop",  # an unknown verb
]
