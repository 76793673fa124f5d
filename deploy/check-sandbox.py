#!/usr/bin/python3
"""Runs the real ygg daemon under the restrictions of deploy/ygg.service, without systemd.

    sudo /usr/bin/python3 deploy/check-sandbox.py [--venv /opt/ygg/venv]
    sudo /usr/bin/python3 deploy/check-sandbox.py --strace   # list the syscalls it makes

For hosts where the unit cannot simply be started (a container, a build machine). Needs root,
util-linux (unshare, setpriv) and python3-seccomp; --strace needs strace. It submits sim,
command, Ollama and OpenAI tasks (the HTTP hosts are fakes on 127.0.0.1), runs
`ygg loop --until-idle` in the sandbox, expects exit 0 and every task done, then runs
`ygg loop` again and expects SIGTERM to stop it with exit 0.

Emulated: User= (an unprivileged uid), NoNewPrivileges, CapabilityBoundingSet=,
AmbientCapabilities=, PrivateMounts, ProtectSystem=strict (every mount read-only except the
state directory), ProtectHome, PrivateTmp, PrivateDevices (a minimal /dev), PrivateIPC,
ProtectHostname, ProtectKernelTunables/Logs and ProtectControlGroups (all of /proc and /sys
read-only: stricter), SystemCallFilter=@system-service ~@privileged @resources with
SystemCallErrorNumber=EPERM, SystemCallArchitectures=native, RestrictAddressFamilies and
MemoryDenyWriteExecute (as seccomp rules, as systemd implements them). Not emulated:
PrivateUsers, ProtectClock, RestrictNamespaces, RestrictRealtime, RestrictSUIDSGID,
LockPersonality, RemoveIPC, KeyringMode — `--strace` shows the daemon makes none of the calls
they restrict.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UID = 61_999  # no passwd entry needed: the daemon never looks its user up
FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6")  # RestrictAddressFamilies= in the unit


def syscall_allow_list() -> list[str]:
    """@system-service minus @privileged and @resources, resolved by systemd itself."""

    def group(name: str) -> set[str]:
        out = subprocess.run(
            ["systemd-analyze", "syscall-filter", "--no-pager", name],
            check=True, capture_output=True, text=True,
        ).stdout
        names: set[str] = set()
        for line in out.splitlines()[1:]:
            item = line.strip()
            if not item or item.startswith("#"):
                continue
            names |= group(item) if item.startswith("@") else {item}
        return names

    return sorted(group("@system-service") - group("@privileged") - group("@resources"))


# --- stage 3: seccomp, then exec the daemon -------------------------------------------------
def exec_filtered(allow_file: str, argv: list[str]) -> None:
    import errno
    import socket

    import seccomp

    flt = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))  # SystemCallErrorNumber=EPERM
    for name in json.loads(Path(allow_file).read_text()):
        if name in ("socket", "mmap", "mprotect", "pkey_mprotect", "shmat"):
            continue  # allowed below, with the argument checks systemd adds
        # A name unknown to this libseccomp or this architecture is skipped, as systemd does.
        with contextlib.suppress(RuntimeError, ValueError):
            flt.add_rule(seccomp.ALLOW, name)
    for family in FAMILIES:
        flt.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, getattr(socket, family)))
    w_x = 0x2 | 0x4  # PROT_WRITE | PROT_EXEC: MemoryDenyWriteExecute refuses them together
    flt.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, w_x, 0))
    flt.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, w_x, 0x2))
    flt.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, w_x, 0x4))
    flt.add_rule(seccomp.ALLOW, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, 0x4, 0))
    flt.add_rule(seccomp.ALLOW, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, 0x4, 0))
    flt.add_rule(seccomp.ALLOW, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, 0o100000, 0))
    flt.load()
    os.execv(argv[0], argv)


# --- stage 2: root in fresh mount/ipc/uts namespaces: build the file system view ------------
def mount(*args: str) -> None:
    subprocess.run(["mount", "-n", *args], check=True)  # -n: /run is read-only by now


def build_view(work: Path, venv: Path) -> Path:
    mount("--make-rprivate", "/")
    inside_venv = work / "venv"
    mount("--bind", str(venv), str(inside_venv))  # the venv may live under /tmp (PrivateTmp)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted(set(points), key=len):
        subprocess.run(["mount", "-n", "-o", "remount,bind,ro", point], capture_output=True)
    mount("--bind", str(work / "state"), str(work / "state"))  # StateDirectory: writable
    mount("-o", "remount,bind,rw", str(work / "state"))
    for private in ("/tmp", "/var/tmp"):
        mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", private)
    for hidden in ("/home", "/root", "/run/user"):
        if Path(hidden).is_dir():
            mount("-t", "tmpfs", "-o", "mode=000,ro", "tmpfs", hidden)
    dev = work / "dev"
    mount("-t", "tmpfs", "-o", "mode=755,nosuid", "tmpfs", str(dev))
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        (dev / node).touch()
        mount("--bind", f"/dev/{node}", str(dev / node))
    (dev / "shm").mkdir()
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", str(dev / "shm"))
    mount("--move", str(dev), "/dev")
    return inside_venv


def inner(work: Path, venv: Path, python_args: list[str]) -> None:
    inside_venv = build_view(work, venv)
    argv = [
        "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--no-new-privs",
        "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
        sys.executable, str(work / "check-sandbox.py"), "--seccomp", str(work / "allow.json"),
        "--", str(inside_venv / "bin" / "python"), *python_args,
    ]
    os.execvp(argv[0], argv)


# --- stage 1: the workload, from outside -----------------------------------------------------
def config_text(state: Path, ollama_url: str, openai_url: str) -> str:
    return f"""[daemon]
db = "{state}/ygg.db"
drain_seconds = 5
poll_seconds = 0.5
log_format = "json"
status_listen = "127.0.0.1:19464"

[pools.sim]
backend = "sim"
seconds = 0.1
slots = 2
kinds = ["general"]

[pools.cmd]
backend = "command"
argv = ["/bin/cat"]
kinds = ["batch"]

[pools.llm]
backend = "ollama"
url = "{ollama_url}"
model = "m"
slots = 2
kinds = ["chat"]

[pools.cloud]
backend = "openai"
url = "{openai_url}"
model = "m"
api_key_env = "YGG_CHECK_KEY"
kinds = ["cloud"]
"""


def ygg(work: Path, venv: Path, *args: str) -> str:
    """The CLI as the service's uid, outside the sandbox (so it can write the same queue)."""
    cmd = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
           str(venv / "bin" / "python"), "-m", "ygg", "--config", str(work / "ygg.toml"), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=work).stdout


def submit_all(work: Path, venv: Path) -> None:
    for kind in ("general", "general", "batch", "chat", "chat", "cloud"):
        ygg(work, venv, "submit", f"check {kind}", "--kind", kind, "--prompt", "hello")


def statuses(work: Path, venv: Path) -> list[str]:
    return [task["status"] for task in json.loads(ygg(work, venv, "list", "--json"))]


def daemon_command(work: Path, venv: Path, strace: Path | None, *loop_args: str) -> list[str]:
    ygg_args = ["--config", str(work / "ygg.toml"), "loop", *loop_args]
    if strace is not None:  # no sandbox: the point is to see every call the daemon makes
        return ["strace", "-f", "-qq", "-o", str(strace), str(venv / "bin" / "python"),
                "-m", "ygg", *ygg_args]
    return sandboxed(work, venv, "-m", "ygg", *ygg_args)


def sandboxed(work: Path, venv: Path, *python_args: str) -> list[str]:
    return ["unshare", "--mount", "--ipc", "--uts", "--propagation", "private",
            sys.executable, str(work / "check-sandbox.py"), "--inner", str(work), str(venv),
            "--", *python_args]


# A negative control: the sandbox must refuse what the unit refuses, or the run proves nothing.
PROBE = """
import errno, json, mmap, os, socket, sys
state = sys.argv[1]
def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps({
    "socket AF_UNIX": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()),
    "socket AF_INET6": attempt(lambda: socket.socket(socket.AF_INET6).close()),
    "socket AF_NETLINK": attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
    "write state dir": attempt(lambda: open(os.path.join(state, "probe"), "w").close()),
    "write /etc": attempt(lambda: open("/etc/ygg-probe", "w").close()),
    "write /opt": attempt(lambda: open("/opt/ygg-probe", "w").close()),
    "list /root": attempt(lambda: os.listdir("/root")),
    "list /home": attempt(lambda: os.listdir("/home")),
    "open a disk in /dev": attempt(lambda: os.listdir("/dev/disk")),
    "W+X mmap": attempt(lambda: mmap.mmap(-1, 4096, prot=7)),
    "chown (@privileged)": attempt(lambda: os.chown(os.path.join(state, "probe"), 0, 0)),
    "setpriority (@resources)": attempt(lambda: os.setpriority(os.PRIO_PROCESS, 0, -5)),
    "setuid 0": attempt(lambda: os.setuid(0)),
}, indent=1))
"""


def probe(work: Path, venv: Path) -> None:
    print("what the sandbox refuses (errno, or allowed):")
    out = subprocess.run(sandboxed(work, venv, "-c", PROBE, str(work / "state")),
                         capture_output=True, text=True, timeout=60)
    print(out.stdout or out.stderr)


def run_checks(work: Path, venv: Path, strace: Path | None) -> list[str]:
    problems: list[str] = []
    env = {**os.environ, "YGG_CHECK_KEY": "sk-check", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NOTIFY_SOCKET", None)
    submit_all(work, venv)
    done = subprocess.run(daemon_command(work, venv, strace, "--until-idle"), env=env,
                          capture_output=True, text=True, timeout=120, cwd=work / "state")
    (work / "until-idle.log").write_text(done.stderr)
    if done.returncode != 0:
        problems.append(f"loop --until-idle exited {done.returncode}: {done.stderr[-2000:]}")
    if set(statuses(work, venv)) != {"done"}:
        problems.append(f"tasks not all done: {statuses(work, venv)}")
    if strace is not None:
        return problems
    submit_all(work, venv)
    daemon = subprocess.Popen(daemon_command(work, venv, None), env=env, cwd=work / "state",
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and set(statuses(work, venv)) != {"done"}:
        time.sleep(0.3)
    daemon.send_signal(signal.SIGTERM)  # reaches the daemon: unshare and setpriv exec it
    _, stderr = daemon.communicate(timeout=60)
    (work / "daemon.log").write_text(stderr)
    if daemon.returncode != 0:
        problems.append(f"loop exited {daemon.returncode} on SIGTERM: {stderr[-2000:]}")
    if set(statuses(work, venv)) != {"done"}:
        problems.append(f"second batch not all done: {statuses(work, venv)}")
    return problems


def report_strace(trace: Path, allowed: list[str]) -> None:
    called = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", trace.read_text(), re.MULTILINE))
    families = set(re.findall(r"socket\((AF_[A-Z0-9]+)", trace.read_text()))
    print("syscalls made:", " ".join(sorted(called)))
    print("outside the unit's filter:", " ".join(sorted(called - set(allowed))) or "none")
    print("socket families:", " ".join(sorted(families)),
          "(outside RestrictAddressFamilies:", " ".join(sorted(families - set(FAMILIES))) or "none",
          ")")


def outer(venv: Path, use_strace: bool, keep: bool) -> int:
    sys.path.insert(0, str(REPO))
    from tests.support.hosts import FakeHost

    work = Path(tempfile.mkdtemp(prefix="ygg-sandbox-check.", dir="/var/lib"))
    os.chmod(work, 0o755)
    for name in ("state", "venv", "dev"):
        (work / name).mkdir()
    os.chown(work / "state", UID, UID)
    shutil.copy(__file__, work / "check-sandbox.py")
    allowed = syscall_allow_list()
    (work / "allow.json").write_text(json.dumps(allowed))
    with FakeHost("ollama") as ollama, FakeHost("openai", api_key="sk-check") as openai:
        (work / "ygg.toml").write_text(config_text(work / "state", ollama.url, openai.url))
        trace = work / "strace.out" if use_strace else None
        if not use_strace:
            probe(work, venv)
        problems = run_checks(work, venv, trace)
    if trace is not None:
        report_strace(trace, allowed)
    for problem in problems:
        print("FAIL:", problem)
    print("work directory:", work if keep or problems else "(removed)")
    if not (keep or problems):
        shutil.rmtree(work)
    if not problems:
        print("OK: the daemon ran every task and stopped cleanly"
              + ("" if use_strace else " inside the sandbox"))
    return 1 if problems else 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--seccomp":
        exec_filtered(sys.argv[2], sys.argv[4:])
    if len(sys.argv) > 3 and sys.argv[1] == "--inner":
        inner(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[5:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/opt/ygg/venv"))
    parser.add_argument("--strace", action="store_true", help="no sandbox; list the syscalls")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args()
    return outer(args.venv.resolve(), args.strace, args.keep)


if __name__ == "__main__":
    sys.exit(main())
