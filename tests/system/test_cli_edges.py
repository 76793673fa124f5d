"""What a new user hit at the edges of the CLI: queues in places that do not exist or cannot
be written, files that are not UTF-8, help that must read well, relative paths that must not
change what a queue is called, and a status server announced once."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.faultfs import SmallDisk
from tests.system.test_cli import Run, as_json, assert_error, make_runner, ok
from ygg.cli import build_parser

SIM = '\n[pools.sim]\nbackend = "sim"\nseconds = 0\nslots = 1\nkinds = ["general"]\n'


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return make_runner(tmp_path)


def test_db_in_a_missing_directory_is_refused_and_nothing_is_created(
    tmp_path: Path, run: Run
) -> None:
    ok(run("init", "--demo"))
    for args in (
        ("submit", "x"),
        ("list",),
        ("status", "--no-probe"),
        ("loop", "--until-idle"),
        ("migrate",),
    ):
        assert_error(run("--db", "typo/queue.db", *args), 2, "typo", "does not exist")
    assert not (tmp_path / "typo").exists()


def test_daemon_db_in_a_missing_directory_is_a_configuration_error(
    tmp_path: Path, run: Run
) -> None:
    (tmp_path / "ygg.toml").write_text('[daemon]\ndb = "state/ygg.db"\n' + SIM)
    for args in (("submit", "x"), ("list",), ("loop", "--until-idle")):
        assert_error(run(*args), 78, "ygg.toml", "daemon.db", "state")
    assert not (tmp_path / "state").exists()
    (tmp_path / "state").mkdir()  # the operator creates it (ygg init, or StateDirectory=)
    ok(run("submit", "x"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    reason = SmallDisk.unavailable()
    if reason:
        pytest.skip(f"no file system can be mounted here: {reason}")
    with SmallDisk(tmp_path / "disk", size="2m") as disk:
        yield disk


def test_a_read_only_file_system_is_one_sentence(tmp_path: Path, small_disk: SmallDisk) -> None:
    config = write_config(tmp_path, SIM)
    existing = small_disk.mountpoint / "existing.db"
    made = run_ygg(config, "--db", str(existing), "submit", "x", prefix=small_disk.prefix)
    assert made.returncode == 0, made.stderr
    small_disk.remount_read_only()
    for db, args in (
        (existing, ("list",)),
        (existing, ("submit", "y")),
        (small_disk.mountpoint / "new.db", ("submit", "y")),
    ):
        result = run_ygg(config, "--db", str(db), *args, prefix=small_disk.prefix)
        assert_error(result, 1, str(db), "read-only")


def test_a_configuration_file_that_is_not_utf8_exits_78(tmp_path: Path, run: Run) -> None:
    (tmp_path / "ygg.toml").write_bytes(b'[daemon]\ndb = "caf\xe9.db"\n')
    assert_error(run("list"), 78, "ygg.toml", "UTF-8")
    (tmp_path / "ygg.toml").write_text(SIM)
    (tmp_path / "ygg.d").mkdir()
    (tmp_path / "ygg.d" / "10-x.toml").write_bytes(b"# \xff\xfe\n")
    assert_error(run("submit", "x"), 78, "10-x.toml", "UTF-8")


def test_every_help_reads_well(run: Run) -> None:
    """Each command's --help works; flags show no type placeholder such as `<bool>`."""
    parser = build_parser()
    commands = [["--help"]]
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            commands.append([name, "--help"])
            for nested in getattr(sub._subparsers, "_group_actions", []):
                commands += [[name, inner, "--help"] for inner in nested.choices]
    assert len(commands) > 15
    for args in commands:
        text = ok(run(*args))
        assert "usage: ygg" in text
        assert "<bool>" not in text and "Input should be" not in text
    assert "--version" in ok(run("--help"))


def test_a_relative_db_names_its_queue_by_absolute_path(tmp_path: Path, run: Run) -> None:
    """The queue's name reaches each command child (and orphan matching) as an absolute path,
    whatever directory `--db` was given relative to."""
    queue_of = [sys.executable, "-c", "import os; print(os.environ['YGG_QUEUE'])"]
    pool = (
        f'\n[pools.cmd]\nbackend = "command"\nargv = {json.dumps(queue_of)}\nslots = 1\n'
        'kinds = ["general"]\n'
    )
    (tmp_path / "ygg.toml").write_text(pool)
    ok(run("--db", "queue.db", "submit", "where"))
    ok(run("--db", "queue.db", "loop", "--until-idle"))
    shown = json.loads(ok(run("--db", str(tmp_path / "queue.db"), "show", "1", "--json")))
    assert shown["status"] == "done"
    assert shown["result"].strip() == str(tmp_path / "queue.db")


def test_the_status_server_is_announced_once(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, SIM, daemon=f'status_listen = "127.0.0.1:{port}"')
    with DaemonSet(config) as daemons:
        daemon = daemons.start()
        assert wait_until(lambda: "dispatcher_started" in daemons.log_of(daemon), 15)
        assert daemons.stop(daemon) == 0
        events = [json.loads(line)["event"] for line in daemons.log_of(daemon).splitlines()]
    assert events.count("status_server_started") == 1


def test_migrate_creates_the_schema_and_says_its_version(tmp_path: Path, run: Run) -> None:
    from ygg.store.sqlite.schema import MIGRATIONS

    ok(run("init", "--demo"))
    first = as_json(run("migrate", "--json"))
    assert first == {"queue": str(tmp_path / "ygg.db"), "schema_version": len(MIGRATIONS)}
    assert ok(run("migrate")) == f"{tmp_path / 'ygg.db'}: schema version {len(MIGRATIONS)}\n"
