"""A stand-in command backend: `python tests/support/cmd_host.py LOGFILE`.

Reads the prompt from stdin and logs `start <task> <attempt> <pool> <pid> <time>` to LOGFILE,
then obeys YGG_PARAM_SECONDS (sleep), YGG_PARAM_STDERR (text for stderr), YGG_PARAM_EXIT
(exit status), YGG_PARAM_STDOUT_BYTES (that many extra bytes on stdout) and
YGG_PARAM_SPAWN_CHILD=1 (a sleeping grandchild in the same process group,
logged as `child <task> <pid> <parent pid>`). Exit status 0 prints `result for <task>: <prompt>`
on stdout. Unless killed, it logs `end <task> <attempt> <pool> <pid> <time>` last.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def log(path: str, *fields: object) -> None:
    """One write per line on an O_APPEND descriptor, so concurrent writers never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(str(f) for f in fields) + "\n").encode())
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: cmd_host.py LOGFILE", file=sys.stderr)
        return 2
    logfile = argv[1]
    prompt = sys.stdin.read()
    env = os.environ
    task, attempt, pool = (env.get(k, "-") for k in ("YGG_TASK_ID", "YGG_ATTEMPT", "YGG_POOL"))
    log(logfile, "start", task, attempt, pool, os.getpid(), time.time())

    child = None
    if env.get("YGG_PARAM_SPAWN_CHILD") == "1":
        child = subprocess.Popen(  # same process group: only a group kill reaches it
            [sys.executable, "-c", "import time; time.sleep(1000)"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log(logfile, "child", task, child.pid, os.getpid())

    time.sleep(float(env.get("YGG_PARAM_SECONDS") or 0))
    if env.get("YGG_PARAM_STDERR"):
        sys.stderr.write(env["YGG_PARAM_STDERR"])
    code = int(env.get("YGG_PARAM_EXIT") or 0)
    if code == 0:
        sys.stdout.write(f"result for {task}: {prompt}")
        sys.stdout.write("x" * int(env.get("YGG_PARAM_STDOUT_BYTES") or 0))
    sys.stdout.flush()
    sys.stderr.flush()
    if child is not None:  # a clean exit leaves nothing behind
        child.kill()
        child.wait()
    log(logfile, "end", task, attempt, pool, os.getpid(), time.time())
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
