"""A command host for fault tests: `python tests/support/run_host.py LOGFILE`.

Like cmd_host.py, but every run can be traced even when it is killed: it logs
`start <task> <attempt> <pool> <pid> <time> <daemon pid>`, then `beat <task> <pid> <time>`
every BEAT_S while it works, then `end <task> <attempt> <pool> <pid> <time>` — written even
when stdout is gone (its daemon was killed), so an orphan's true lifetime is visible. A run
killed with SIGKILL has no end; its last beat bounds when it stopped.

The result names the run: `result task=<task> attempt=<attempt> pid=<pid>`, so a recorded
result can be matched to the run that produced it. YGG_PARAM_SECONDS sets the work time.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

BEAT_S = 0.02


def log(path: str, *fields: object) -> None:
    """One write per line on an O_APPEND descriptor, so concurrent writers never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(str(f) for f in fields) + "\n").encode())
    finally:
        os.close(fd)


def beat(path: str, task: str, done: threading.Event) -> None:
    while not done.wait(BEAT_S):
        log(path, "beat", task, os.getpid(), time.time())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: run_host.py LOGFILE", file=sys.stderr)
        return 2
    logfile = argv[1]
    sys.stdin.read()
    env = os.environ
    task, attempt, pool = (env.get(k, "-") for k in ("YGG_TASK_ID", "YGG_ATTEMPT", "YGG_POOL"))
    log(logfile, "start", task, attempt, pool, os.getpid(), time.time(), os.getppid())
    done = threading.Event()
    beater = threading.Thread(target=beat, args=(logfile, task, done), daemon=True)
    beater.start()
    try:
        time.sleep(float(env.get("YGG_PARAM_SECONDS") or 0))
        with contextlib.suppress(OSError):  # the reader may be gone: its daemon was killed
            os.write(1, f"result task={task} attempt={attempt} pid={os.getpid()}".encode())
    finally:
        done.set()
        beater.join()
        log(logfile, "end", task, attempt, pool, os.getpid(), time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
