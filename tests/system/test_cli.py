"""The real `ygg` console script, run as a subprocess: outputs, --json shapes and exit codes."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from ygg import __version__
from ygg.config.examples import example_config

REPO = Path(__file__).resolve().parents[2]
ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TASK_FIELDS = (
    "id",
    "title",
    "kind",
    "priority",
    "status",
    "pool",
    "attempts",
    "max_attempts",
    "depends_on",
    "params",
    "created_at",
    "started_at",
    "finished_at",
    "result",
    "error",
    "external_id",
)
POOL_FIELDS = ("name", "host", "backend", "slots", "running", "queued", "breaker")
STATUSES = ("waiting", "queued", "running", "done", "failed", "cancelled", "blocked")

Result = subprocess.CompletedProcess[str]
Run = Callable[..., Result]


def make_runner(cwd: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    env["PYTHONPATH"] = str(REPO)

    def run(*args: str, input: str | bytes | None = None) -> Result:
        data = input.encode("utf-8") if isinstance(input, str) else input
        done = subprocess.run(
            [sys.executable, "-m", "ygg", *args],
            cwd=cwd,
            env=env,
            input=data if data is not None else b"",
            capture_output=True,
            timeout=60,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode("utf-8"),
            done.stderr.decode("utf-8", "replace"),
        )

    return run


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return make_runner(tmp_path)


def run_all(run: Run, *calls: Sequence[str]) -> list[Result]:
    """Runs independent commands at once: each process is mostly interpreter start-up."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run(*args), calls))


def ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


def assert_error(result: Result, code: int, *fragments: str) -> str:
    """Exit `code`, nothing on stdout, one line on stderr starting 'ygg: ', no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ygg: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_task(task: dict[str, Any], **expected: Any) -> None:
    assert set(TASK_FIELDS) <= set(task), sorted(set(TASK_FIELDS) - set(task))
    assert isinstance(task["id"], int)
    assert isinstance(task["depends_on"], list)
    assert isinstance(task["params"], dict)
    assert ISO_US.match(task["created_at"]), task["created_at"]
    for stamp in ("started_at", "finished_at"):
        assert task[stamp] is None or ISO_US.match(task[stamp]), task[stamp]
    for key, value in expected.items():
        assert task[key] == value, (key, task[key], value)


def task_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        count: int = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    return count


# --- the happy paths, grouped: one workspace, one story ----------------------------------


def test_task_lifecycle(tmp_path: Path, run: Run) -> None:
    main = tmp_path / "ygg.toml"
    assert ok(run("init", "--demo")).startswith("wrote ygg.toml")
    assert main.read_text(encoding="utf-8") == example_config(demo=True)

    first = as_json(run("submit", "first", "--param", "seconds=0", "--json"))
    assert_task(
        first,
        id=1,
        title="first",
        kind="general",
        priority=2,
        status="queued",
        pool=None,
        attempts=0,
        max_attempts=3,
        depends_on=[],
        params={"seconds": "0"},
        started_at=None,
        finished_at=None,
        result=None,
        error=None,
        external_id=None,
    )
    second = ["submit", "second", "--kind", "summarize", "-p", "0", "--after", "1"]
    second += ["--param", "seconds=0", "--max-attempts", "5", "--timeout", "30"]
    assert ok(run(*second)) == "2\n"
    prompt = b"line one\r\nline two\rthree\n\ttabbed \xc3\xa9\xe2\x82\xac\x00\n\n"
    third = ["submit", "third", "--kind", "code-generation", "--priority", "4"]
    assert ok(run(*third, "--param", "seconds=0", "--prompt", "-", input=prompt)) == "3\n"
    fourth = ["submit", "fourth", "--param", "seconds=0", "--param", "fail=true"]
    assert ok(run(*fourth, "--max-attempts", "1")) == "4\n"
    assert ok(run("submit", "fifth", "--after", "4", "--param", "seconds=0")) == "5\n"

    (
        again,
        orphan,
        shown,
        tasks,
        waiting,
        limited,
        by_kind,
        text,
        status,
        status_text,
    ) = run_all(
        run,
        ("init", "--demo"),
        ("submit", "orphan", "--after", "99"),
        ("show", "3", "--json"),
        ("list", "--json"),
        ("list", "--status", "waiting", "--json"),
        ("list", "--limit", "1", "--json"),
        ("list", "--kind", "code-generation"),
        ("show", "2"),
        ("status", "--json"),
        ("status",),
    )
    assert_error(again, 2, "already exists")
    assert main.read_text(encoding="utf-8") == example_config(demo=True)
    # --after a missing task: exit 2, and no row is added
    assert_error(orphan, 2, "99")
    assert task_rows(tmp_path / "ygg.db") == 5

    assert as_json(shown)["prompt"] == prompt.decode("utf-8")  # byte for byte, \r kept
    assert_task(as_json(shown), id=3, kind="code-generation", priority=4, status="queued")

    listed = as_json(tasks)
    assert [t["id"] for t in listed] == [2, 1, 4, 5, 3]  # most urgent first, FIFO within one
    for task in listed:
        assert_task(task)
    assert_task(listed[0], status="waiting", depends_on=[1], max_attempts=5, priority=0)
    assert [t["id"] for t in as_json(waiting)] == [2, 5]
    assert [t["id"] for t in as_json(limited)] == [2]
    header, *lines = ok(by_kind).splitlines()
    assert header.split() == ["id", "pri", "status", "kind", "pool", "tries", "title"]
    assert len(lines) == 1 and "third" in lines[0] and "queued" in lines[0]
    assert "task 2: second" in ok(text) and "waiting" in ok(text) and "after     1" in ok(text)

    report = as_json(status)
    assert set(report) >= {"pools", "tasks"}
    assert [p["name"] for p in report["pools"]] == ["surtr-reasoning", "fenrir-chat", "skadi-code"]
    for pool in report["pools"]:
        assert set(POOL_FIELDS) <= set(pool), pool
        assert (pool["backend"], pool["running"]) == ("sim", 0)
        assert pool["breaker"] == "closed"
    fenrir = report["pools"][1]
    assert (fenrir["host"], fenrir["slots"], fenrir["queued"]) == ("fenrir", 3, 0)
    assert report["pools"][0]["queued"] == 2  # tasks 1 and 4, kind general
    assert report["tasks"] == {s: 0 for s in STATUSES} | {"queued": 3, "waiting": 2}
    assert "surtr-reasoning" in ok(status_text) and "breaker" in ok(status_text)

    assert ok(run("cancel", "3")) == "task 3: queued → cancelled\n"
    cancelled = as_json(run("show", "3", "--json"))
    assert_task(cancelled, status="cancelled")
    assert ISO_US.match(cancelled["finished_at"])
    assert ok(run("retry", "3")).startswith("task 3: queued")

    ok(run("loop", "--until-idle"))

    one, two, four, after, cancel_done = run_all(
        run,
        ("show", "1", "--json"),
        ("show", "2", "--json"),
        ("show", "4", "--json"),
        ("list", "--json"),
        ("cancel", "1"),
    )
    done = as_json(one)
    assert_task(done, status="done", pool="surtr-reasoning", attempts=1, error=None)
    assert done["result"] and ISO_US.match(done["started_at"]) and ISO_US.match(done["finished_at"])
    assert_task(as_json(two), status="done", pool="fenrir-chat")
    by_id = {t["id"]: t["status"] for t in as_json(after)}
    assert by_id == {1: "done", 2: "done", 3: "done", 4: "failed", 5: "blocked"}
    failed = as_json(four)
    assert_task(failed, attempts=1, result=None)
    assert failed["error"]
    assert_error(cancel_done, 2, "done")

    assert ok(run("retry", "4")).startswith("task 4: queued")
    by_id = {t["id"]: t["status"] for t in as_json(run("list", "--json"))}
    assert (by_id[4], by_id[5]) == ("queued", "waiting")  # its blocked dependent waits again


def test_config_get_and_set(tmp_path: Path, run: Run) -> None:
    main = tmp_path / "ygg.toml"
    ok(run("init", "--demo"))
    before = main.read_bytes()
    local = tmp_path / "ygg.d" / "50-local.toml"

    slots, db, kinds, missing, invalid = run_all(
        run,
        ("config", "get", "pools.fenrir-chat.slots"),
        ("config", "get", "daemon.db"),
        ("config", "get", "pools.fenrir-chat.kinds", "--json"),
        ("config", "get", "pools.nope.slots"),
        ("config", "set", "pools.fenrir-chat.slots", "0"),
    )
    assert ok(slots) == "3\n"
    assert ok(db) == "ygg.db\n"
    assert as_json(kinds) == ["text-processing", "summarize", "text-extraction"]
    assert_error(missing, 2, "pools.nope.slots")
    # an invalid value is refused before anything is written
    assert_error(invalid, 78, "pools.fenrir-chat.slots")
    assert not (tmp_path / "ygg.d").exists()
    assert main.read_bytes() == before

    ok(run("config", "set", "pools.fenrir-chat.slots", "4"))
    assert main.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "ygg.d").iterdir()) == ["50-local.toml"]
    written = local.read_bytes()
    assert tomllib.loads(written.decode()) == {"pools": {"fenrir-chat": {"slots": 4}}}

    slots, slots_json, status, misspelt, wrong_type = run_all(
        run,
        ("config", "get", "pools.fenrir-chat.slots"),
        ("config", "get", "pools.fenrir-chat.slots", "--json"),
        ("status", "--json"),
        ("config", "set", "pools.fenrir-chat.slot", "5"),
        ("config", "set", "pools.fenrir-chat.slots", '"two"'),
    )
    assert ok(slots) == "4\n"
    assert as_json(slots_json) == 4
    pool = as_json(status)["pools"][1]
    assert (pool["slots"], pool["limit"]) == (4, 4)  # not adaptive: the limit is the slots
    assert_error(misspelt, 78, "pools.fenrir-chat.slot", "did you mean 'slots'")
    assert_error(wrong_type, 78, "pools.fenrir-chat.slots")
    assert local.read_bytes() == written
    assert main.read_bytes() == before


def test_version_and_db_without_config(tmp_path: Path, run: Run) -> None:
    work = tmp_path / "work"
    work.mkdir()
    in_work = make_runner(work)
    ok(in_work("init", "--demo"))
    ok(in_work("submit", "remote", "--kind", "reasoning"))

    # tmp_path itself holds no ygg.toml; --db is enough to read a queue
    db = str(work / "ygg.db")
    version, tasks, shown, missing = run_all(
        run,
        ("--version",),
        ("--db", db, "list", "--json"),
        ("--db", db, "show", "1", "--json"),
        ("--db", db, "show", "2"),
    )
    assert ok(version) == f"ygg {__version__}\n"
    assert [t["title"] for t in as_json(tasks)] == ["remote"]
    assert_task(as_json(shown), title="remote", kind="reasoning", status="queued")
    assert_error(missing, 2, "2")


# --- invalid input: exit 2, one line on stderr --------------------------------------------


class Bad(NamedTuple):
    args: tuple[str, ...]
    fragments: tuple[str, ...] = ()
    input: bytes | None = None


BIG_PROMPT = b"x" * (1024 * 1024 + 1)
HUGE = "1" + "0" * 23  # more than any engine's integer holds

INVALID = {
    "unknown-kind": Bad(
        ("submit", "x", "--kind", "bogus"), ("bogus", "general", "summarize", "code-generation")
    ),
    "priority-5": Bad(("submit", "x", "-p", "5"), ("5",)),
    "priority-minus-1": Bad(("submit", "x", "--priority", "-1"), ("-1",)),
    "priority-not-a-number": Bad(("submit", "x", "-p", "high"), ("--priority",)),
    "show-unknown-id": Bad(("show", "99"), ("99",)),
    "cancel-unknown-id": Bad(("cancel", "99"), ("99",)),
    "retry-unknown-id": Bad(("retry", "99"), ("99",)),
    "show-non-integer-id": Bad(("show", "abc"), ("ID",)),
    "cancel-done-task": Bad(("cancel", "1"), ("done",)),
    "retry-queued-task": Bad(("retry", "2"), ("queued",)),
    "after-missing-task": Bad(("submit", "x", "--after", "99"), ("99",)),
    "param-without-equals": Bad(("submit", "x", "--param", "seconds"), ("KEY=VALUE",)),
    "param-bad-name": Bad(("submit", "x", "--param", "1-bad=v"), ("1-bad",)),
    "prompt-and-prompt-file": Bad(
        ("submit", "x", "--prompt", "a", "--prompt-file", "p.txt"), ("--prompt-file",)
    ),
    "prompt-file-missing": Bad(("submit", "x", "--prompt-file", "missing.txt"), ("missing.txt",)),
    "prompt-not-utf8": Bad(("submit", "x", "--prompt", "-"), ("prompt",), b"\xff\xfe"),
    "prompt-over-1mib": Bad(("submit", "x", "--prompt", "-"), ("1048576",), BIG_PROMPT),
    "empty-title": Bad(("submit", ""), ("title",)),
    "blank-title": Bad(("submit", "   "), ("title",)),
    "title-too-long": Bad(("submit", "t" * 501), ("500",)),
    "max-attempts-0": Bad(("submit", "x", "--max-attempts", "0"), ("--max-attempts",)),
    "timeout-0": Bad(("submit", "x", "--timeout", "0"), ("--timeout",)),
    "list-status-bogus": Bad(("list", "--status", "bogus"), ("bogus", "queued")),
    "list-limit-0": Bad(("list", "--limit", "0"), ("--limit",)),
    "unknown-command": Bad(("frobnicate",), ("frobnicate",)),
    "unknown-option": Bad(("list", "--frobnicate"), ("--frobnicate",)),
    "missing-argument": Bad(("show",), ("ID",)),
    "missing-title": Bad(("submit",), ("title",)),
    "config-get-unknown-key": Bad(("config", "get", "daemon.nope"), ("daemon.nope",)),
    "title-with-newline": Bad(("submit", "two\nlines"), ("control character", "'\\n'")),
    "title-with-escape": Bad(("submit", "clear\x1b[2Jscreen"), ("control character",)),
    "title-with-tab": Bad(("submit", "a\tb"), ("control character",)),
    "show-id-too-large": Bad(("show", HUGE), ("No task", HUGE)),
    "cancel-id-too-large": Bad(("cancel", HUGE), ("No task", HUGE)),
    "retry-id-too-large": Bad(("retry", HUGE), ("No task", HUGE)),
    "show-id-negative": Bad(("show", "-5"), ("-5",)),
    "after-too-large": Bad(("submit", "x", "--after", HUGE), (HUGE,)),
    "max-attempts-too-large": Bad(("submit", "x", "--max-attempts", HUGE), ("--max-attempts",)),
    "limit-too-large": Bad(("list", "--limit", HUGE), ("--limit",)),
    "limit-not-a-number": Bad(("list", "--limit", "many"), ("--limit", "whole number")),
    "priority-too-large": Bad(("submit", "x", "-p", HUGE), ("Priority",)),
    "timeout-not-a-number": Bad(("submit", "x", "--timeout", "soon"), ("--timeout",)),
}


@pytest.fixture(scope="module")
def invalid_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Result, int]]:
    """Every invalid command, run at once on a demo queue holding task 1 (done) and 2 (queued).

    Each result comes with the number of task rows afterwards, which must still be 2.
    """
    path = tmp_path_factory.mktemp("invalid")
    run = make_runner(path)
    ok(run("init", "--demo"))
    ok(run("submit", "finished", "--param", "seconds=0"))
    ok(run("loop", "--until-idle"))
    ok(run("submit", "waiting-in-line", "--kind", "summarize"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda bad: run(*bad.args, input=bad.input), INVALID.values()))
    rows = task_rows(path / "ygg.db")
    return {name: (result, rows) for name, result in zip(INVALID, results, strict=True)}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_input_exits_2(invalid_results: dict[str, tuple[Result, int]], name: str) -> None:
    result, rows = invalid_results[name]
    assert_error(result, 2, *INVALID[name].fragments)
    assert rows == 2


# --- configuration errors: exit 78 --------------------------------------------------------

BROKEN = '[pools.a]\nbackend = "sim"\nslot = 2\n'


@pytest.mark.parametrize(
    ("files", "args", "fragments"),
    [
        pytest.param({}, ("list",), ("No configuration found",), id="none-list"),
        pytest.param({}, ("submit", "x"), ("No configuration found",), id="none-submit"),
        pytest.param({}, ("loop", "--until-idle"), ("ygg init",), id="none-loop"),
        pytest.param(
            {}, ("--config", "nope.toml", "list"), ("nope.toml",), id="missing-config-option"
        ),
        pytest.param(
            {"ygg.toml": BROKEN},
            ("submit", "x"),
            ("ygg.toml", "pools.a.slot", "did you mean 'slots'"),
            id="broken-submit",
        ),
        pytest.param(
            {"ygg.toml": BROKEN},
            ("loop", "--until-idle"),
            ("ygg.toml", "pools.a.slot"),
            id="broken-loop",
        ),
        pytest.param(
            {
                "ygg.toml": example_config(demo=True),
                "ygg.d/20-x.toml": "[pools.fenrir-chat]\nslots=0",
            },
            ("submit", "x"),
            ("20-x.toml", "pools.fenrir-chat.slots"),
            id="broken-drop-in",
        ),
        pytest.param(
            {"ygg.toml": "[daemon\n"}, ("status",), ("ygg.toml", "invalid TOML"), id="bad-toml"
        ),
        pytest.param(
            {"ygg.toml": '[daemon]\ndb = "q.db"\n'},
            ("loop", "--until-idle"),
            ("no pools",),
            id="no-pools",
        ),
    ],
)
def test_configuration_errors_exit_78(
    tmp_path: Path,
    run: Run,
    files: dict[str, str],
    args: tuple[str, ...],
    fragments: tuple[str, ...],
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert_error(run(*args), 78, *fragments)
    assert not list(tmp_path.glob("*.db"))
