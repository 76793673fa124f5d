"""Beads import, the pure parts: reading lines (parse) and deciding what becomes a task (plan)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ygg.beads.parse import Edge, Issue, parse_lines, parse_timestamp_us
from ygg.beads.plan import Draft, Plan, make_plan, order_blockers_first, prompt_of
from ygg.errors import InvalidInput
from ygg.store.model import NewTask

NOW_US = 1_750_000_000 * 1_000_000  # 2025-06-15


def line(**fields: Any) -> bytes:
    record = {"id": "x-1", "title": "T", "status": "open", "priority": 2, **fields}
    return json.dumps(record).encode() + b"\n"


def issue(key: str, *edges: tuple[str, str], **fields: Any) -> Issue:
    values: dict[str, Any] = {"line": 1, "title": key, "status": "open", "priority": 2}
    values.update(fields)
    return Issue(id=key, edges=tuple(Edge(t, kind) for t, kind in edges), **values)


def accept(draft: Draft) -> NewTask:
    return NewTask(
        draft.title, draft.kind, draft.priority, draft.prompt, external_id=draft.external_id
    )


def plan(*issues: Issue, served: tuple[str, ...] = ("general",), **kw: Any) -> Plan:
    return make_plan(
        list(issues),
        served_kinds=served,
        default_kind=kw.pop("default_kind", "general"),
        validate=kw.pop("validate", accept),
        now_us=NOW_US,
    )


def planned(result: Plan) -> dict[str, tuple[str, ...]]:
    return {p.task.external_id or "": p.after for p in result.tasks}


def reasons(result: Plan) -> dict[str, str]:
    return {skip.issue_id: skip.reason for skip in result.skipped}


# --- parse ----------------------------------------------------------------------------------


def test_a_full_issue_is_read_and_unknown_fields_are_ignored() -> None:
    record = line(
        id="bd-7",
        title="Fix it",
        priority=0,
        issue_type="bug",
        description="d",
        design="g",
        acceptance_criteria="a",
        notes="n",
        labels=["code", 3],
        dependencies=[
            {"issue_id": "bd-7", "depends_on_id": "bd-1", "type": "blocks"},
            {"issue_id": "bd-7", "depends_on_id": "bd-2"},
        ],
        content_hash="abc",
        some_future_field={"nested": True},
    )
    parsed = parse_lines([record])
    assert parsed.malformed == [] and parsed.notes == []
    assert parsed.issues == [
        Issue(
            id="bd-7",
            line=1,
            title="Fix it",
            status="open",
            priority=0,
            issue_type="bug",
            description="d",
            design="g",
            acceptance_criteria="a",
            notes="n",
            labels=("code",),
            edges=(Edge("bd-1", "blocks"), Edge("bd-2", "blocks")),  # untyped edge: bd's default
        )
    ]


def test_malformed_lines_are_reported_by_number_and_the_rest_still_parses() -> None:
    lines = [
        line(id="a"),
        b"{not json\n",
        b"\n",
        b"[1, 2]\n",
        json.dumps({"title": "no id"}).encode(),
        b'{"id": "b", "title": "\xff"}\n',
        json.dumps({"id": "c", "title": None}).encode(),
        line(id="d"),
    ]
    parsed = parse_lines(lines)
    assert [i.id for i in parsed.issues] == ["a", "d"]
    assert [i.line for i in parsed.issues] == [1, 8]
    assert [p.line for p in parsed.malformed] == [2, 4, 5, 6, 7]
    assert "not valid JSON" in parsed.malformed[0].text()
    assert parsed.malformed[0].text().startswith("line 2: ")
    assert parsed.lines == 8


def test_records_that_are_not_issues_and_a_byte_order_mark() -> None:
    memory = json.dumps({"_type": "memory", "key": "k", "value": "v"}).encode()
    parsed = parse_lines([b"\xef\xbb\xbf" + line(id="a", _type="issue"), memory])
    assert [i.id for i in parsed.issues] == ["a"]
    assert parsed.other_records == 1 and parsed.malformed == []


@pytest.mark.parametrize(
    ("value", "expected", "noted"),
    [
        (0, 0, False),
        (4, 4, False),
        (-1, 0, True),
        (7, 4, True),
        ("P1", 2, True),
        (None, 2, True),
        (True, 2, True),
        (1.5, 2, True),
    ],
)
def test_priorities_outside_0_to_4_are_clamped_and_reported(
    value: Any, expected: int, noted: bool
) -> None:
    parsed = parse_lines([line(priority=value)])
    assert parsed.issues[0].priority == expected
    assert bool(parsed.notes) is noted
    if noted:
        assert parsed.notes[0].issue_id == "x-1" and parsed.notes[0].line == 1


@pytest.mark.parametrize(
    ("text", "expected_us"),
    [
        ("2026-01-15T06:19:16.796021-08:00", 1_768_486_756_796_021),
        ("2026-01-15T14:19:16.796021Z", 1_768_486_756_796_021),
        ("2026-01-15T14:19:16.796021123Z", 1_768_486_756_796_021),  # nanoseconds
        ("2026-01-15T15:19:16.7960219+0100", 1_768_486_756_796_021),
        ("2026-01-15T14:19:16Z", 1_768_486_756_000_000),
        ("0001-01-01T00:00:00Z", 0),
        ("yesterday", None),
        ("2026-13-01T00:00:00Z", None),
    ],
)
def test_timestamps_in_every_form_beads_writes(text: str, expected_us: int | None) -> None:
    assert parse_timestamp_us(text) == expected_us


def test_defer_until_zero_time_means_unset() -> None:
    parsed = parse_lines(
        [line(defer_until="0001-01-01T00:00:00Z"), line(defer_until="2030-01-01T00:00:00Z")]
    )
    assert parsed.issues[0].defer_until_us is None
    assert parsed.issues[1].defer_until_us == 1_893_456_000_000_000


# --- plan -----------------------------------------------------------------------------------


def test_only_open_work_is_imported() -> None:
    result = plan(
        issue("open"),
        issue("closed", status="closed"),
        issue("doing", status="in_progress"),
        issue("gone", status="tombstone"),
        issue("later", status="future"),
        issue("gate", issue_type="gate"),
        issue("wisp", ephemeral=True),
        issue("deferred", defer_until_us=NOW_US + 1),
        issue("was-deferred", defer_until_us=NOW_US - 1),
    )
    assert planned(result) == {"open": (), "was-deferred": ()}
    assert reasons(result) == {
        "closed": "closed",
        "doing": "status:in_progress",
        "gone": "deleted",
        "later": "status:future",
        "gate": "infrastructure",
        "wisp": "ephemeral",
        "deferred": "deferred",
    }


def test_blocking_edges_become_dependencies_and_the_rest_are_ignored() -> None:
    result = plan(
        issue("a"),
        issue("b", ("a", "blocks")),
        issue("c", ("a", "conditional-blocks"), ("done", "blocks"), ("pin", "blocks")),
        issue("d", ("a", "related"), ("a", "discovered-from"), ("a", "custom-link")),
        issue("done", status="closed"),
        issue("pin", status="pinned"),
    )
    assert planned(result) == {"a": (), "b": ("a",), "c": ("a",), "d": ()}
    assert [p.task.external_id for p in result.tasks].index("a") == 0  # blockers first


def test_a_child_waits_for_what_blocks_any_ancestor_not_for_the_parent() -> None:
    result = plan(
        issue("blocker"),
        issue("epic", ("blocker", "blocks")),
        issue("story", ("epic", "parent-child")),
        issue("leaf", ("story", "parent-child"), ("other", "blocks")),
        issue("other"),
        issue("free-epic"),
        issue("free-child", ("free-epic", "parent-child")),
    )
    assert planned(result) == {
        "blocker": (),
        "epic": ("blocker",),
        "story": ("blocker",),
        "leaf": ("blocker", "other"),
        "other": (),
        "free-epic": (),
        "free-child": (),
    }


def test_an_unfinished_blocker_that_is_not_imported_skips_its_dependents() -> None:
    result = plan(
        issue("doing", status="in_progress"),
        issue("next", ("doing", "blocks"), line=2),
        issue("after-next", ("next", "blocks"), line=3),
        issue("child", ("doing-epic", "parent-child")),
        issue("doing-epic", ("doing", "blocks"), status="in_progress"),
    )
    assert planned(result) == {}
    assert reasons(result)["next"] == "blocked_by_skipped"
    detail = {s.issue_id: s.detail for s in result.skipped}
    assert detail["next"] == "blocked by doing, which is not imported (status:in_progress)"
    assert detail["after-next"] == "blocked by next, which is not imported (blocked_by_skipped)"
    assert reasons(result)["child"] == "blocked_by_skipped"


def test_a_dependency_on_an_id_not_in_the_file_is_ignored_and_reported() -> None:
    result = plan(issue("a", ("elsewhere-1", "blocks"), line=4))
    assert planned(result) == {"a": ()}
    assert [w.text() for w in result.warnings] == [
        "line 4 (a): depends on elsewhere-1, which is not in the file; ignored"
    ]


def test_cycles_are_reported_and_not_imported_nor_their_dependents() -> None:
    result = plan(
        issue("a", ("b", "blocks")),
        issue("b", ("c", "blocks")),
        issue("c", ("a", "blocks")),
        issue("d", ("c", "blocks")),
        issue("epic", ("kid", "blocks")),  # blocked by its own child: the child blocks itself
        issue("kid", ("epic", "parent-child")),
        issue("fine"),
    )
    assert planned(result) == {"fine": ()}
    assert sorted(result.cycles) == [("a", "b", "c"), ("kid",)]
    assert reasons(result) == {
        "a": "cycle",
        "b": "cycle",
        "c": "cycle",
        "d": "blocked_by_skipped",
        "kid": "cycle",
        "epic": "blocked_by_skipped",
    }


def test_kind_is_the_first_served_label_else_the_default() -> None:
    result = plan(
        issue("a", labels=("ux", "docs", "code")),
        issue("b", labels=("ux",)),
        served=("code", "docs", "general"),
        default_kind="general",
    )
    assert {p.task.external_id: p.task.kind for p in result.tasks} == {"a": "docs", "b": "general"}


def test_the_prompt_gathers_description_design_acceptance_and_notes() -> None:
    full = issue("a", description=" D ", design="G", acceptance_criteria="A", notes="N")
    assert prompt_of(full) == "D\n\n## Design\n\nG\n\n## Acceptance criteria\n\nA\n\n## Notes\n\nN"
    assert prompt_of(issue("b", notes="N")) == "## Notes\n\nN"
    assert prompt_of(issue("Only a title")) == "Only a title"


def test_an_issue_the_validator_refuses_is_skipped_with_the_reason() -> None:
    def refuse_long(draft: Draft) -> NewTask:
        if len(draft.prompt) > 10:
            raise InvalidInput("The prompt is larger than 10 bytes.")
        return accept(draft)

    result = plan(
        issue("big", description="x" * 11, line=3),
        issue("dep", ("big", "blocks")),
        issue("small"),
        validate=refuse_long,
    )
    assert planned(result) == {"small": ()}
    skip = next(s for s in result.skipped if s.issue_id == "big")
    assert (skip.line, skip.reason, skip.detail) == (
        3,
        "invalid",
        "The prompt is larger than 10 bytes.",
    )
    assert reasons(result)["dep"] == "blocked_by_skipped"


def test_a_duplicate_id_keeps_the_later_line() -> None:
    result = plan(issue("a", title="old", line=1), issue("a", title="new", line=2))
    assert [p.task.title for p in result.tasks] == ["new"]
    assert [w.text() for w in result.warnings] == [
        "line 2 (a): duplicate of line 1; the later line is used"
    ]


def test_ordering_a_deep_chain_needs_no_recursion() -> None:
    depth = 20_000
    blockers = {str(i): frozenset({str(i + 1)}) for i in range(depth)}
    blockers[str(depth)] = frozenset()
    order, cycles = order_blockers_first(blockers)
    assert cycles == []
    assert order == [str(i) for i in range(depth, -1, -1)]
