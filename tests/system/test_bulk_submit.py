"""`ygg submit --jsonl`: many tasks in one call, one transaction, every error naming its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.test_cli import Run, as_json, assert_error, assert_task, make_runner, ok


@pytest.fixture
def run(tmp_path: Path) -> Run:
    runner = make_runner(tmp_path)
    ok(runner("init", "--demo"))
    return runner


def lines(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def test_many_tasks_from_a_file_and_from_stdin(tmp_path: Path, run: Run) -> None:
    batch = tmp_path / "tasks.jsonl"
    batch.write_text(
        lines(
            {"title": "plain"},
            {"title": "urgent", "kind": "reasoning", "priority": 0, "prompt": "why?"},
            {"title": "later", "after": [1], "max_attempts": 5, "timeout": 30},
            {"title": "typed params", "params": {"seconds": 0.5, "model": "m"}},
        )
        + "\n"  # a blank line is skipped
    )
    assert ok(run("submit", "--jsonl", str(batch))) == "1\n2\n3\n4\n"
    created = as_json(run("submit", "--jsonl", "-", "--json", input=lines({"title": "five"})))
    assert [t["id"] for t in created] == [5]
    tasks = {t["id"]: t for t in as_json(run("list", "--json"))}
    assert_task(tasks[2], title="urgent", kind="reasoning", priority=0, status="queued")
    assert_task(tasks[3], status="waiting", depends_on=[1], max_attempts=5, timeout=30.0)
    assert tasks[4]["params"] == {"seconds": "0.5", "model": "m"}
    assert json.loads(ok(run("show", "2", "--json")))["prompt"] == "why?"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (lines({"title": "ok"}, {"title": "x", "kind": "bogus"}), ("Line 2", "bogus")),
        (lines({"title": "ok"}) + "{not json\n", ("Line 2", "not valid JSON")),
        (lines({"title": "ok"}, {"kind": "general"}), ("Line 2", "'title'")),
        (lines({"title": "ok"}, {"title": "x", "colour": "red"}), ("Line 2", "colour")),
        (lines({"title": "ok"}, {"title": "x", "priority": "high"}), ("Line 2", "priority")),
        (lines({"title": "a"}, {"title": "b"}, {"title": "c", "after": [99]}), ("Line 3", "99")),
        (lines({"title": "ok"}, ["a list"]), ("Line 2", "JSON object")),
        (lines({"title": "two\nlines"}), ("Line 1", "control character")),
    ],
)
def test_an_invalid_line_stores_nothing_and_names_its_line(
    run: Run, text: str, fragments: tuple[str, ...]
) -> None:
    assert_error(run("submit", "--jsonl", "-", input=text), 2, *fragments)
    assert as_json(run("list", "--json")) == []


def test_jsonl_excludes_a_title_and_task_options(run: Run) -> None:
    for args in (("submit", "title", "--jsonl", "-"), ("submit", "--jsonl", "-", "-p", "0")):
        assert_error(run(*args, input=lines({"title": "x"})), 2, "--jsonl")
    assert_error(run("submit", "--jsonl", "missing.jsonl"), 2, "missing.jsonl")
    assert as_json(run("list", "--json")) == []
