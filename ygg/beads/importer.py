"""`ygg import beads`: read the file, plan, write the plan in one transaction, wake daemons."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ygg import api
from ygg.beads.parse import LineProblem, parse_lines
from ygg.beads.plan import Draft, Plan, Skip, make_plan
from ygg.config import Config
from ygg.errors import InvalidInput
from ygg.store import NewTask
from ygg.store.model import Upsert, UpsertResult, now_us

if TYPE_CHECKING:
    from ygg.store.base import Store


# phase ("read" in bytes, "write" in tasks), amount done, total
Progress = Callable[[str, int, int], None]
# Skip reasons worth a warning line each; the routine ones (closed, status:in_progress,
# infrastructure...) are only counted in the summary.
WARN_REASONS = frozenset({"invalid", "cycle", "blocked_by_skipped"})


@dataclass
class ImportReport:
    path: str
    lines: int = 0
    issues: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    queued: int = 0
    waiting: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    warnings: list[LineProblem] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "lines": self.lines,
            "issues": self.issues,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "queued": self.queued,
            "waiting": self.waiting,
            "skipped_by_reason": self.skipped_by_reason,
            "cycles": self.cycles,
            "warnings": [
                {"line": w.line, "id": w.issue_id, "message": w.message} for w in self.warnings
            ],
        }


def import_beads(
    config: Config,
    store: Store,
    path: Path,
    *,
    default_kind: str = "general",
    progress: Progress | None = None,
) -> ImportReport:
    """Imports one `issues.jsonl`; raises InvalidInput if it cannot be read at all."""
    api.check_utf8(default_kind, "The kind")
    api.check_kind(config, default_kind)  # refused like `ygg submit --kind` even if unused
    parsed = parse_lines(_read_lines(path, progress))

    def validate(draft: Draft) -> NewTask:
        return api.new_task(
            config,
            title=draft.title,
            kind=draft.kind,
            priority=draft.priority,
            prompt=draft.prompt,
            external_id=draft.external_id,
        )

    plan = make_plan(
        parsed.issues,
        served_kinds=config.kinds_served(),
        default_kind=default_kind,
        validate=validate,
        now_us=now_us(),
    )
    items = [Upsert(planned.task, planned.after) for planned in plan.tasks]
    total = len(items)
    written = store.upsert_external(
        items,
        now_us(),
        None if progress is None else (lambda done: progress("write", done, total)),
    )
    if written.imported or written.updated:
        api.wake_daemons(store)
    report = ImportReport(str(path), lines=parsed.lines, issues=len(parsed.issues))
    _count(report, plan, written, malformed=parsed.malformed, other=parsed.other_records)
    report.warnings = sorted(
        [*parsed.malformed, *parsed.notes, *plan.warnings, *_skip_warnings(plan, written)],
        key=lambda w: w.line,
    )
    return report


def _read_lines(path: Path, progress: Progress | None) -> Iterator[bytes]:
    """The file's lines as bytes (split on \\n only), reporting bytes read as it goes."""
    try:
        handle = path.open("rb")
        size_bytes = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from None
    with handle:
        read_bytes = 0
        try:
            for line in handle:
                read_bytes += len(line)
                if progress is not None:
                    progress("read", read_bytes, size_bytes)
                yield line
        except OSError as exc:
            raise InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from None


def _count(
    report: ImportReport,
    plan: Plan,
    written: UpsertResult,
    *,
    malformed: list[LineProblem],
    other: int,
) -> None:
    reasons = Counter(skip.reason for skip in plan.skipped)
    if malformed:
        reasons["malformed"] = len(malformed)
    if other:
        reasons["not_an_issue"] = other
    report.skipped_by_reason = dict(sorted(reasons.items()))
    report.skipped = sum(reasons.values())
    report.imported = len(written.imported)
    report.updated = len(written.updated)
    report.unchanged = len(written.unchanged)
    statuses = Counter(written.status.values())
    report.queued, report.waiting = statuses["queued"], statuses["waiting"]
    report.cycles = [list(cycle) for cycle in plan.cycles]


def _skip_warnings(plan: Plan, written: UpsertResult) -> list[LineProblem]:
    warnings = [
        LineProblem(skip.line, skip.detail or skip.reason, skip.issue_id)
        for skip in plan.skipped
        if skip.reason in WARN_REASONS
        and not (skip.reason == "cycle" and skip.issue_id != _first_of_cycle(plan, skip))
    ]
    lines = {planned.task.external_id: planned.line for planned in plan.tasks}
    for external_id, task_id, status in written.kept:
        message = f"changed, but task {task_id} is already {status}; left as it is"
        warnings.append(LineProblem(lines.get(external_id, 0), message, external_id))
    return warnings


def _first_of_cycle(plan: Plan, skip: Skip) -> str | None:
    """One warning per cycle (it names every id), on its first member's line."""
    for cycle in plan.cycles:
        if skip.issue_id in cycle:
            return cycle[0]
    return None
