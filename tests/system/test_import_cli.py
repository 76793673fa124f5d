"""`ygg import beads` as the real process: summaries, --json, warnings and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import OWN_BEADS, SHARED_BEADS_VAR, shared_beads
from tests.system.test_cli import Run, as_json, assert_error, make_runner, ok

SHARED = shared_beads()
needs_shared = pytest.mark.skipif(SHARED is None, reason=f"{SHARED_BEADS_VAR} is not set")
CONFIG = """
[daemon]
db = "ygg.db"
log_format = "json"

[pools.sim]
backend = "sim"
seconds = 0.0
slots = 4
kinds = ["general", "documentation"]
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ygg.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


@pytest.fixture
def run(workspace: Path) -> Run:
    return make_runner(workspace)


def import_twice_then_run(
    run: Run, path: Path, counts: dict[str, int], skipped: str, warnings: str = ""
) -> None:
    """Imports `path`, again (nothing changes), then runs every task to done."""
    first = run("import", "beads", str(path), "--json")
    report = as_json(first)
    assert first.stderr == warnings
    assert {key: report[key] for key in counts} == counts
    queued, waiting, imported = counts["queued"], counts["waiting"], counts["imported"]
    again = ok(run("import", "beads", str(path)))
    assert again.splitlines() == [
        f"{path.name}: imported 0 (queued {queued}, waiting {waiting}), updated 0,"
        f" unchanged {imported}, skipped {counts['skipped']}",
        f"skipped: {skipped}",
    ]
    tasks = as_json(run("list", "--json"))
    assert len(tasks) == imported and all(task["external_id"] for task in tasks)
    ok(run("loop", "--until-idle"))  # waiting tasks are promoted as their blockers finish
    status = as_json(run("status", "--json", "--no-probe"))
    assert status["tasks"]["done"] == imported


def kinds_by_external_id(run: Run) -> dict[str, str]:
    return {task["external_id"]: task["kind"] for task in as_json(run("list", "--json"))}


def test_import_an_export_then_again_then_run_it(workspace: Path, run: Run) -> None:
    counts = {"imported": 7, "queued": 6, "waiting": 1, "skipped": 5, "unchanged": 0}
    skipped = "blocked_by_skipped 1, closed 2, status:blocked 1, status:in_progress 1"
    warning = "line 8 (early-a7): blocked by early-a6, which is not imported (status:in_progress)"
    path = OWN_BEADS / "early-schema.jsonl"
    import_twice_then_run(run, path, counts, skipped, f"ygg: warning: {warning}\n")
    kinds = kinds_by_external_id(run)
    assert kinds["early-a5"] == "documentation"  # its first label that a pool serves
    assert kinds["early-e1"] == "general"  # no labels: the default --kind


@needs_shared
def test_import_a_real_export_then_again_then_run_it(workspace: Path, run: Run) -> None:
    assert SHARED is not None
    path = SHARED / "quad-ops.jsonl"
    counts = {"imported": 22, "queued": 12, "waiting": 10, "skipped": 172, "unchanged": 0}
    import_twice_then_run(run, path, counts, "closed 171, status:in_progress 1")
    kinds = kinds_by_external_id(run)
    assert kinds["quad-ops-0pl"] == "documentation"
    assert kinds["quad-ops-1i5"] == "general"


def test_bad_lines_and_cycles_are_warnings_not_failures(workspace: Path, run: Run) -> None:
    lines = [
        {"id": "a", "title": "A", "status": "open", "priority": 1},
        "{broken",
        {"id": "b", "title": "B", "status": "open", "priority": 1,
         "dependencies": [{"issue_id": "b", "depends_on_id": "c", "type": "blocks"}]},
        {"id": "c", "title": "C", "status": "open", "priority": 1,
         "dependencies": [{"issue_id": "c", "depends_on_id": "b", "type": "blocks"}]},
    ]  # fmt: skip
    path = workspace / "issues.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    result = run("import", "beads", str(path))
    assert ok(result).splitlines()[0] == (
        "issues.jsonl: imported 1 (queued 1, waiting 0), updated 0, unchanged 0, skipped 3"
    )
    assert result.stderr.splitlines() == [
        "ygg: warning: dependency cycle: b -> c",
        "ygg: warning: line 2: not valid JSON (Expecting property name enclosed in double "
        "quotes); line skipped",
        "ygg: warning: line 3 (b): in a dependency cycle (b -> c); not imported",
    ]


def test_errors_are_one_sentence_and_exit_2(workspace: Path, run: Run) -> None:
    assert_error(run("import", "beads", "missing.jsonl"), 2, "Cannot read missing.jsonl")
    assert_error(run("import", "beads", "."), 2, "Cannot read .")
    (workspace / "issues.jsonl").write_text('{"id": "a", "title": "A", "status": "open"}\n')
    refused = run("import", "beads", "issues.jsonl", "--kind", "nope")
    assert_error(refused, 2, "No pool serves kind 'nope'", "documentation, general")
    assert not (workspace / "ygg.db").exists() or as_json(run("list", "--json")) == []


def test_no_progress_output_when_stderr_is_not_a_terminal(workspace: Path, run: Run) -> None:
    one = {"title": "T", "status": "open", "priority": 2, "description": "x" * 600}
    records = [{"id": f"big-{i}", **one} for i in range(2000)]
    path = workspace / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert path.stat().st_size > 1024 * 1024
    result = run("import", "beads", str(path), "--json")
    assert as_json(result)["imported"] == 2000
    assert result.stderr == ""
