"""The commands people call in loops import only what they use (scripts/cli_startup.py times
them): never asyncio, httpx, the bench, prometheus_client or the daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from ygg.store import open_store

HEAVY = ("asyncio", "httpx", "prometheus_client", "uvloop", "rich", "structlog", "dataclasses")
HEAVY_OWN = ("ygg.bench", "ygg.dispatch", "ygg.backends", "ygg.daemon")
PROBE = """
import json, sys
from ygg.cli import run
status = run(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""
CONFIG = """
[daemon]
db = "queue.db"

[pools.sim]
backend = "sim"
kinds = ["general"]
"""


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["submit", "a task"], ["list"], ["show", "1"], ["cancel", "1"], ["retry", "1"]],
    ids=lambda argv: argv[0],
)
def test_a_command_imports_only_what_it_uses(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "ygg.toml").write_text(CONFIG, encoding="utf-8")
    seeds = [["submit", "first"]] + ([["cancel", "1"]] if argv[0] == "retry" else [])
    for seed in seeds:
        command = [sys.executable, "-c", PROBE, *seed]
        subprocess.run(command, cwd=tmp_path, env=subprocess_env(), check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if argv == ["--version"]:  # argparse prints the version and exits before `run` returns
        assert done.stdout.startswith("ygg ") and done.returncode == 0
        return
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["status"] == 0, done.stderr
    loaded = report["modules"]
    assert "ygg.store" in loaded  # the probe did run the command
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY_OWN)]
    assert heavy == []


def python(cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (its imports are what is measured)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_version_builds_no_command_group(tmp_path: Path) -> None:
    probe = "import sys\nfrom ygg.cli import build_parser\nbuild_parser(['--version'])\n"
    probe += "print(sorted(m for m in sys.modules if m.startswith('ygg.')))"
    expected = str(
        ["ygg.cli", "ygg.cli.args", "ygg.cli.context", "ygg.cli.parser", "ygg.cli.plain_argparse",
         "ygg.errors"]
    )  # fmt: skip
    assert python(tmp_path, probe).stdout.strip() == expected


def test_the_console_script_answers_version_before_argparse(tmp_path: Path) -> None:
    probe = (
        "import sys\nsys.argv = ['ygg', '--version']\nfrom ygg.cli.entry import run\nrun()\n"
        "print(sorted(m for m in sys.modules if m.startswith('ygg') or m == 'argparse'))"
    )
    version, loaded = python(tmp_path, probe).stdout.splitlines()
    assert version.startswith("ygg ")
    assert loaded == "['ygg', 'ygg.cli', 'ygg.cli.entry']"


# What a regular install's `ygg submit` would otherwise spend its start-up on (docs/PERFORMANCE.md).
SLOW_STDLIB = (
    "tomllib",
    "typing",
    "pathlib",
    "urllib",
    "locale",
    "gettext",
    "contextlib",
    "dataclasses",
    "json",
)


def bare_python(cwd: Path, code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -S`: no site-packages and no .pth files, whose import hooks (the editable
    install's among them) load pathlib and typing before ygg does, as a regular install's
    interpreter would not."""
    return subprocess.run(
        [sys.executable, "-S", "-c", code, *argv],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


# As PROBE, but the modules are listed before the report's own `import json`.
BARE_PROBE = """
import sys
from ygg.cli import run
status = run(sys.argv[1:])
modules = sorted(sys.modules)
import json
print(json.dumps({"status": status, "modules": modules}))
"""


def slow_modules(tmp_path: Path, argv: list[str]) -> list[str]:
    report = json.loads(bare_python(tmp_path, BARE_PROBE, *argv).stdout.splitlines()[-1])
    assert report["status"] == 0
    return [m for m in report["modules"] if m.split(".")[0] in SLOW_STDLIB]


@pytest.mark.parametrize(
    "argv", [["submit", "a task"], ["list"], ["show", "1"]], ids=lambda argv: argv[0]
)
def test_a_command_with_an_unchanged_configuration_skips_the_slow_stdlib(
    tmp_path: Path, argv: list[str]
) -> None:
    config = tmp_path / "ygg.toml"
    config.write_text(CONFIG, encoding="utf-8")
    # Just written: inside the cache's racy window, so this run parses the TOML...
    assert "tomllib" in slow_modules(tmp_path, ["submit", "first"])
    past = time.time() - 60
    os.utime(config, (past, past))
    slow_modules(tmp_path, ["list"])  # ...and once the file is older, one run caches it.
    assert slow_modules(tmp_path, argv) == []


def test_a_submit_nudging_a_daemon_imports_neither_socket_nor_typing(tmp_path: Path) -> None:
    config = tmp_path / "ygg.toml"
    config.write_text(CONFIG, encoding="utf-8")
    past = time.time() - 60
    os.utime(config, (past, past))
    slow_modules(tmp_path, ["list"])  # creates the queue and caches the configuration
    address = f"\0ygg-test/{os.getpid()}/{time.monotonic_ns()}"
    store = open_store(str(tmp_path / "queue.db"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:
        daemon.bind(address)  # stands in for a daemon's nudge listener
        daemon.settimeout(30)
        store.register_daemon("here", os.getpid(), 0, address, "async", 0)
        store.close()

        done = bare_python(tmp_path, BARE_PROBE, "submit", "a task")
        assert daemon.recv(64) == b"wake"  # the submit did nudge it
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["status"] == 0
    assert [m for m in report["modules"] if m.split(".")[0] in ("socket", *SLOW_STDLIB)] == []


def test_argparse_is_imported_without_gettext_and_gettext_stays_whole(tmp_path: Path) -> None:
    probe = (
        "import sys\nimport ygg.cli.args\nprint('gettext' in sys.modules)\n"
        "import argparse, gettext\nprint(gettext.translation.__module__, argparse._('usage: '))"
    )
    before, after = bare_python(tmp_path, probe).stdout.splitlines()
    assert (before, after) == ("False", "gettext usage: ")
