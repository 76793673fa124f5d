"""`import_beads` against a real SQLite file: every fixture export, re-imports and updates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OWN_BEADS, SHARED_BEADS_VAR, MakeConfig, shared_beads
from ygg.api import MAX_PROMPT_BYTES, MAX_TITLE_CHARS
from ygg.beads.importer import ImportReport, import_beads
from ygg.config import Config
from ygg.errors import InvalidInput
from ygg.store import NewTask, Store, Task, open_store
from ygg.store.model import Upsert, now_us

OWN_FILES = sorted(OWN_BEADS.glob("*.jsonl"))
SHARED = shared_beads()
SHARED_FILES = sorted(SHARED.glob("*.jsonl")) if SHARED else []
FIXTURE_FILES = OWN_FILES + SHARED_FILES
needs_shared = pytest.mark.skipif(SHARED is None, reason=f"{SHARED_BEADS_VAR} is not set")
POOLS = """
[pools.sim]
backend = "sim"
seconds = 0.0
slots = 1
kinds = ["general", "documentation", "code"]
"""
INFRA = {"merge-request", "gate", "molecule", "message", "agent", "role", "rig"}


def bd_ready(path: Path) -> set[str]:
    """What `bd ready` lists, from the README's definition, straight from the raw JSON."""
    issues: dict[str, dict[str, Any]] = {}
    for text in path.read_bytes().split(b"\n"):
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("_type", "issue") != "issue":
            continue
        if isinstance(record.get("id"), str) and isinstance(record.get("title"), str):
            issues[record["id"]] = record

    def targets(record: dict[str, Any], types: set[str]) -> list[str]:
        edges = record.get("dependencies")
        edges = edges if isinstance(edges, list) else []
        edges = [e for e in edges if isinstance(e, dict) and "depends_on_id" in e]
        return [e["depends_on_id"] for e in edges if e.get("type", "blocks") in types]

    def blocked(record: dict[str, Any], seen: set[str]) -> bool:
        blockers = targets(record, {"blocks", "conditional-blocks"})
        if any(issues.get(t, {}).get("status") not in (None, "closed", "pinned") for t in blockers):
            return True
        parents = [p for p in targets(record, {"parent-child"}) if p in issues and p not in seen]
        return any(blocked(issues[p], seen | {p}) for p in parents)

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        key
        for key, r in issues.items()
        if (r.get("status") or "open") == "open"
        and not r.get("ephemeral")
        and r.get("issue_type") not in INFRA
        and str(r.get("defer_until") or "") <= now
        and not blocked(r, {key})
    }


@pytest.fixture
def config(make_config: MakeConfig) -> Config:
    return make_config(POOLS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "queue.db"))
    yield opened
    opened.close()


def by_external_id(store: Store) -> dict[str, Task]:
    return {t.external_id or "": t for t in store.list_tasks(limit=1_000_000)}


def check_against_bd_ready(store: Store, path: Path, report: ImportReport) -> None:
    tasks = by_external_id(store)
    queued = {key for key, task in tasks.items() if task.status == "queued"}
    assert queued == bd_ready(path)
    assert {task.status for task in tasks.values()} <= {"queued", "waiting"}
    assert (report.queued, report.waiting) == (
        len(queued),
        sum(task.status == "waiting" for task in tasks.values()),
    )
    ids = {task.id for task in tasks.values()}
    for task in tasks.values():  # a waiting task waits on imported tasks, and only then
        assert set(task.depends_on) <= ids
        assert bool(task.depends_on) == (task.status == "waiting")


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.name for p in FIXTURE_FILES])
def test_each_fixture_queues_exactly_what_bd_ready_lists(
    path: Path, config: Config, store: Store
) -> None:
    first = import_beads(config, store, path)
    check_against_bd_ready(store, path, first)
    assert first.imported == first.queued + first.waiting == len(by_external_id(store))
    non_blank = sum(bool(line.strip()) for line in path.read_bytes().split(b"\n"))
    assert first.imported + first.skipped == non_blank
    assert first.updated == first.unchanged == 0

    again = import_beads(config, store, path)  # idempotent: nothing added, nothing changed
    assert (again.imported, again.updated, again.unchanged) == (0, 0, first.imported)
    assert (again.queued, again.waiting, again.skipped) == (
        first.queued,
        first.waiting,
        first.skipped,
    )
    assert len(by_external_id(store)) == first.imported
    check_against_bd_ready(store, path, again)


def import_counts(config: Config, store: Store, paths: list[Path]) -> dict[str, Any]:
    counts = {}
    for path in paths:
        report = import_beads(config, store, path)
        counts[path.name] = (report.imported, report.queued, report.waiting, report.skipped)
        counts[path.name + " skipped"] = report.skipped_by_reason
    return counts


def test_the_known_counts_of_our_own_exports(config: Config, store: Store) -> None:
    assert import_counts(config, store, OWN_FILES) == {
        "current-schema.jsonl": (12, 8, 4, 17),
        "current-schema.jsonl skipped": {
            "blocked_by_skipped": 1,
            "closed": 1,
            "deferred": 1,
            "deleted": 1,
            "ephemeral": 1,
            "infrastructure": 4,
            "not_an_issue": 2,
            "status:cancelled": 1,
            "status:deferred": 1,
            "status:done": 1,
            "status:future": 1,
            "status:hooked": 1,
            "status:pinned": 1,
        },
        "damaged.jsonl": (6, 6, 0, 7),
        "damaged.jsonl skipped": {"cycle": 2, "malformed": 5},
        "early-schema.jsonl": (7, 6, 1, 5),
        "early-schema.jsonl skipped": {
            "blocked_by_skipped": 1,
            "closed": 2,
            "status:blocked": 1,
            "status:in_progress": 1,
        },
    }


def test_a_damaged_export_is_imported_with_a_warning_per_line(config: Config, store: Store) -> None:
    report = import_beads(config, store, OWN_BEADS / "damaged.jsonl")
    assert [w.text() for w in report.warnings] == [
        "line 3: not valid JSON (Expecting value); line skipped",
        "line 4: not a JSON object; line skipped",
        "line 5: has no issue id; line skipped",
        "line 6: issue dmg-2 has no title text; line skipped",
        "line 7 (dmg-3): priority 17 is outside 0-4; using 4",
        "line 8 (dmg-4): depends on other-repo-9, which is not in the file; ignored",
        "line 9 (dmg-5): in a dependency cycle (dmg-5 -> dmg-6); not imported",
        "line 11 (dmg-7): no priority; using 2",
        "line 11 (dmg-7): description is not text; ignored",
        "line 11 (dmg-7): dependencies is not a list; ignored",
        "line 11 (dmg-7): defer_until [] is not a timestamp; ignored",
        "line 12 (dmg-8): a dependency without depends_on_id; ignored",
        "line 14: not UTF-8 text; line skipped",
    ]
    titles = {task.external_id: task.title for task in store.list_tasks()}
    assert titles["dmg-1"] == "After a byte-order mark"  # the BOM is not part of the id
    assert tasks_ready_now(store) >= {"dmg-9"}  # a zone written +0100, long past


def tasks_ready_now(store: Store) -> set[str]:
    return {t.external_id or "" for t in store.list_tasks() if t.status == "queued"}


@needs_shared
def test_the_known_counts_of_the_real_exports(config: Config, store: Store) -> None:
    assert import_counts(config, store, SHARED_FILES) == {
        "fastapi-todo-api-beads.jsonl": (0, 0, 0, 64),
        "fastapi-todo-api-beads.jsonl skipped": {"closed": 64},
        "quad-ops.jsonl": (22, 12, 10, 172),
        "quad-ops.jsonl skipped": {"closed": 171, "status:in_progress": 1},
    }


def record(key: str, *edges: tuple[str, str], **fields: Any) -> dict[str, Any]:
    deps = [{"issue_id": key, "depends_on_id": t, "type": kind} for t, kind in edges]
    base = {"id": key, "title": f"Issue {key}", "status": "open", "priority": 2}
    stamp = "2026-01-15T06:19:16.796021123Z"  # nanoseconds, as Go writes them
    return {**base, "issue_type": "task", "created_at": stamp, "dependencies": deps, **fields}


VARIANTS = [
    record("s-1", labels=["ux", "documentation"], description="Write it", notes="carefully"),
    record("s-2", ("s-1", "blocks")),
    record("s-3", ("s-closed", "blocks"), _type="issue", comment_count=3),
    record("s-closed", status="closed", closed_at="2026-01-16T00:00:00-08:00"),
    record("s-epic", ("s-1", "blocks"), issue_type="epic"),
    record("s-child", ("s-epic", "parent-child")),
    record("s-free-child", ("s-closed", "parent-child")),
    record("s-related", ("s-1", "related"), ("s-2", "discovered-from"), ("s-2", "my-link")),
    record("s-prog", status="in_progress"),
    record("s-after-prog", ("s-prog", "blocks")),
    record("s-gate", issue_type="gate"),
    record("s-after-gate", ("s-gate", "blocks")),
    record("s-pinned", status="pinned"),
    record("s-after-pinned", ("s-pinned", "blocks")),
    record("s-wisp", ephemeral=True),
    record("s-deferred", defer_until="2999-01-01T00:00:00Z"),
    record("s-undeferred", defer_until="2001-01-01T00:00:00Z"),
    record("s-zero", defer_until="0001-01-01T00:00:00Z"),
    record("s-cond", ("s-2", "conditional-blocks")),
    record("s-cyc-a", ("s-cyc-b", "blocks")),
    record("s-cyc-b", ("s-cyc-a", "blocks")),
    record("s-prio", priority=9),
    record("s-tomb", status="tombstone"),
    record("s-custom", status="done"),
    record("s-dangling", ("elsewhere-9", "blocks")),
    {"_type": "memory", "key": "style", "value": "short functions"},
]


def write_export(path: Path, records: list[dict[str, Any]], *, bad_line_at: int = 0) -> Path:
    lines = [json.dumps(r) for r in records]
    if bad_line_at:
        lines.insert(bad_line_at - 1, '{"id": "broken", "title": ')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_variants_the_fixture_readme_lists(
    tmp_path: Path, config: Config, store: Store
) -> None:
    path = write_export(tmp_path / "issues.jsonl", VARIANTS, bad_line_at=5)
    report = import_beads(config, store, path)
    check_against_bd_ready(store, path, report)
    tasks = by_external_id(store)
    assert tasks["s-1"].kind == "documentation" and tasks["s-2"].kind == "general"
    assert tasks["s-1"].prompt == "Write it\n\n## Notes\n\ncarefully"
    assert tasks["s-prio"].priority == 4
    assert tasks["s-child"].depends_on == (tasks["s-1"].id,)  # the epic's blocker, not the epic
    assert tasks["s-cond"].status == "waiting"
    assert report.cycles == [["s-cyc-a", "s-cyc-b"]]
    assert report.skipped_by_reason == {
        "blocked_by_skipped": 2,
        "closed": 1,
        "cycle": 2,
        "deferred": 1,
        "deleted": 1,
        "ephemeral": 1,
        "infrastructure": 1,
        "malformed": 1,
        "not_an_issue": 1,
        "status:done": 1,
        "status:in_progress": 1,
        "status:pinned": 1,
    }
    warnings = [w.text() for w in report.warnings]
    assert any(w.startswith("line 5: not valid JSON") for w in warnings)
    assert any(w.startswith("line 23 (s-prio): priority 9 is outside 0-4") for w in warnings)
    assert any("(s-after-prog): blocked by s-prog" in w for w in warnings)
    assert any(
        "(s-dangling): depends on elsewhere-9, which is not in the file" in w for w in warnings
    )


def test_reimport_updates_only_tasks_that_have_not_started(
    tmp_path: Path, config: Config, store: Store
) -> None:
    records = [record("a"), record("b", ("a", "blocks")), record("c"), record("d", ("c", "blocks"))]
    path = write_export(tmp_path / "issues.jsonl", records)
    import_beads(config, store, path)
    claimed = store.claim("sim", ["general"], 1, slots=1, owner=1, lease_us=10**9, now_us=now_us())
    assert [claim.title for claim in claimed] == ["Issue a"]

    records[0]["title"] = "a, renamed while it runs"
    records[1]["priority"] = 0
    records[2]["status"] = "closed"  # d's blocker is done in Beads: d no longer waits
    records[3]["description"] = "now with a prompt"
    records.append(record("e", ("b", "blocks")))
    report = import_beads(config, store, write_export(path, records))

    assert (report.imported, report.updated, report.unchanged) == (1, 2, 1)
    tasks = by_external_id(store)
    assert tasks["a"].title == "Issue a" and tasks["a"].status == "running"
    assert (tasks["b"].priority, tasks["b"].status) == (0, "waiting")
    assert (tasks["d"].status, tasks["d"].depends_on, tasks["d"].prompt) == (
        "queued",
        (),
        "now with a prompt",
    )
    assert tasks["c"].status == "queued"  # closed since: left as it is (see docs/BEADS.md)
    assert tasks["e"].depends_on == (tasks["b"].id,)
    kept = [w.text() for w in report.warnings if "left as it is" in w.message]
    assert kept == [
        f"line 1 (a): changed, but task {tasks['a'].id} is already running; left as it is"
    ]


def test_a_task_too_large_for_submit_is_skipped_with_its_line(
    tmp_path: Path, config: Config, store: Store
) -> None:
    records = [
        record("ok"),
        record("huge", description="x" * (MAX_PROMPT_BYTES + 1)),
        record("long", title="t" * (MAX_TITLE_CHARS + 1)),
        record("after-huge", ("huge", "blocks")),
    ]
    report = import_beads(config, store, write_export(tmp_path / "issues.jsonl", records))
    assert set(by_external_id(store)) == {"ok"}
    texts = [w.text() for w in report.warnings]
    assert f"line 2 (huge): The prompt is larger than {MAX_PROMPT_BYTES} bytes." in texts
    assert f"line 3 (long): The title is longer than {MAX_TITLE_CHARS} characters." in texts
    assert "line 4 (after-huge): blocked by huge, which is not imported (invalid)" in texts


def test_the_store_write_is_all_or_nothing(store: Store) -> None:
    items = [
        Upsert(NewTask("first", "general", external_id="x-1")),
        Upsert(NewTask("second", "general", external_id="x-2"), after=("x-1",)),
        Upsert(NewTask("third", "general", external_id="x-3"), after=("nowhere",)),
    ]
    with pytest.raises(InvalidInput, match="nowhere"):
        store.upsert_external(items, now_us())
    assert store.counts() == {}
    result = store.upsert_external(items[:2], now_us())
    assert result.status == {"x-1": "queued", "x-2": "waiting"}


def test_a_default_kind_no_pool_serves_is_refused_before_writing(
    tmp_path: Path, config: Config, store: Store
) -> None:
    path = write_export(tmp_path / "issues.jsonl", [record("a")])
    with pytest.raises(InvalidInput, match="No pool serves kind 'nope'"):
        import_beads(config, store, path, default_kind="nope")
    assert store.counts() == {}
    with pytest.raises(InvalidInput, match="Cannot read"):
        import_beads(config, store, tmp_path / "missing.jsonl")


def test_progress_is_reported_for_reading_and_writing(
    tmp_path: Path, config: Config, store: Store
) -> None:
    path = write_export(tmp_path / "issues.jsonl", [record("a"), record("b")])
    seen: list[tuple[str, int, int]] = []
    import_beads(config, store, path, progress=lambda *step: seen.append(step))
    size = path.stat().st_size
    assert seen[-3:] == [("read", size, size), ("write", 1, 2), ("write", 2, 2)]
