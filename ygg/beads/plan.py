"""Deciding what an export becomes: which issues are tasks, their kinds, what they wait for.

Pure: issues in, a plan out. The rule that shapes it: after the import, the queued tasks are
exactly the issues `bd ready` would list. So an issue is imported only if it could become
ready work (status `open`, not ephemeral, not deferred, not an infrastructure type), and a task
waits for exactly the imported issues that keep it from being ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ygg.beads.parse import Issue, LineProblem
from ygg.errors import InvalidInput
from ygg.store.model import NewTask

INFRASTRUCTURE_TYPES = frozenset(
    {"merge-request", "gate", "molecule", "message", "agent", "role", "rig"}
)
BLOCKING_TYPES = frozenset({"blocks", "conditional-blocks"})
PARENT_TYPE = "parent-child"  # a child is blocked while its parent is blocked
DONE_STATUSES = frozenset({"closed", "pinned"})  # blockers in these states no longer block
_SECTIONS = (
    ("design", "Design"),
    ("acceptance_criteria", "Acceptance criteria"),
    ("notes", "Notes"),
)


@dataclass(frozen=True)
class Draft:
    """One issue as a task, before the same validation `ygg submit` applies."""

    external_id: str
    title: str
    kind: str
    priority: int
    prompt: str


Validate = Callable[[Draft], NewTask]  # raises InvalidInput for a task submit would refuse


@dataclass(frozen=True)
class PlannedTask:
    task: NewTask  # validated; its external_id is the Beads id
    line: int
    after: tuple[str, ...]  # Beads ids of imported issues it waits for


@dataclass(frozen=True)
class Skip:
    line: int
    issue_id: str
    reason: str  # a key for the summary: closed, status:in_progress, invalid, cycle, ...
    detail: str = ""  # a sentence, for the reasons a user should read line by line


@dataclass
class Plan:
    tasks: list[PlannedTask] = field(default_factory=list)  # blockers before dependents
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[LineProblem] = field(default_factory=list)
    cycles: list[tuple[str, ...]] = field(default_factory=list)


def make_plan(
    issues: Sequence[Issue],
    *,
    served_kinds: Iterable[str],
    default_kind: str,
    validate: Validate,
    now_us: int,
) -> Plan:
    plan = Plan()
    by_id = _index(issues, plan)
    served = frozenset(served_kinds)
    skipped: dict[str, Skip] = {}
    drafts: dict[str, NewTask] = {}
    for issue in by_id.values():
        reason = not_importable(issue, now_us)
        if reason is not None:
            skipped[issue.id] = Skip(issue.line, issue.id, reason)
            continue
        try:
            drafts[issue.id] = validate(draft(issue, served, default_kind))
        except InvalidInput as exc:
            skipped[issue.id] = Skip(issue.line, issue.id, "invalid", exc.message)
    blockers = {key: effective_blockers(by_id, key, plan) for key in drafts}
    order, cycles = order_blockers_first(blockers)
    for cycle in cycles:
        plan.cycles.append(cycle)
        named = " -> ".join(cycle)
        for key in cycle:
            detail = f"in a dependency cycle ({named}); not imported"
            skipped[key] = Skip(by_id[key].line, key, "cycle", detail)
    _resolve(order, blockers, by_id, drafts, skipped, plan)
    plan.skipped = sorted([*plan.skipped, *skipped.values()], key=lambda skip: skip.line)
    return plan


def _index(issues: Sequence[Issue], plan: Plan) -> dict[str, Issue]:
    """Issues by id; an id seen twice keeps its later line (exports append newer state)."""
    by_id: dict[str, Issue] = {}
    for issue in issues:
        earlier = by_id.pop(issue.id, None)
        if earlier is not None:
            message = f"duplicate of line {earlier.line}; the later line is used"
            plan.warnings.append(LineProblem(issue.line, message, issue.id))
            plan.skipped.append(Skip(earlier.line, issue.id, "duplicate"))
        by_id[issue.id] = issue
    return by_id


def not_importable(issue: Issue, now_us: int) -> str | None:
    """Why an issue can never be ready work now (the summary's reason key), or None."""
    if issue.status != "open":
        if issue.status in ("closed", "tombstone"):
            return "closed" if issue.status == "closed" else "deleted"
        return f"status:{issue.status}"
    if issue.issue_type in INFRASTRUCTURE_TYPES:
        return "infrastructure"
    if issue.ephemeral:
        return "ephemeral"
    if issue.defer_until_us is not None and issue.defer_until_us > now_us:
        return "deferred"
    return None


def draft(issue: Issue, served: frozenset[str], default_kind: str) -> Draft:
    kind = next((label for label in issue.labels if label in served), default_kind)
    return Draft(issue.id, issue.title, kind, issue.priority, prompt_of(issue))


def prompt_of(issue: Issue) -> str:
    """The description, then design, acceptance criteria and notes under headings."""
    parts = [issue.description.strip()] if issue.description.strip() else []
    for name, heading in _SECTIONS:
        text = str(getattr(issue, name)).strip()
        if text:
            parts.append(f"## {heading}\n\n{text}")
    return "\n\n".join(parts) if parts else issue.title.strip()


def effective_blockers(by_id: Mapping[str, Issue], key: str, plan: Plan) -> frozenset[str]:
    """The unfinished issues blocking `key` directly or through any ancestor (parent-child).

    A dependency on an id that is not in the file is ignored (bd's ready query joins on the
    issues table, so a dangling edge blocks nothing there either) and reported once.
    """
    found: set[str] = set()
    seen, frontier = {key}, [key]
    while frontier:
        issue = by_id[frontier.pop()]
        for edge in issue.edges:
            target = by_id.get(edge.target)
            if target is None:
                if issue.id == key and (edge.type in BLOCKING_TYPES or edge.type == PARENT_TYPE):
                    message = f"depends on {edge.target}, which is not in the file; ignored"
                    plan.warnings.append(LineProblem(issue.line, message, issue.id))
            elif edge.type in BLOCKING_TYPES and target.status not in DONE_STATUSES:
                found.add(target.id)
            elif edge.type == PARENT_TYPE and target.id not in seen:
                seen.add(target.id)
                frontier.append(target.id)
    return frozenset(found)


def order_blockers_first(
    blockers: Mapping[str, frozenset[str]],
) -> tuple[list[str], list[tuple[str, ...]]]:
    """Tarjan's strongly connected components, iteratively (exports can be deep).

    Components come out blockers first; those with more than one issue, or an issue blocking
    itself, are cycles. Edges to ids outside `blockers` are left to the caller.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    order: list[str] = []
    cycles: list[tuple[str, ...]] = []
    for root in blockers:
        if root in index:
            continue
        work = [(root, iter(sorted(blockers[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next((t for t in targets if t in blockers), None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(blockers[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = _pop_component(stack, on_stack, node)
                order.extend(component)
                if len(component) > 1 or node in blockers[node]:
                    cycles.append(tuple(sorted(component)))
    return order, cycles


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component: list[str] = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            return component


def _resolve(
    order: Sequence[str],
    blockers: Mapping[str, frozenset[str]],
    by_id: Mapping[str, Issue],
    drafts: Mapping[str, NewTask],
    skipped: dict[str, Skip],
    plan: Plan,
) -> None:
    """Imports each issue whose blockers are all imported; the rest are skipped and say why.

    A blocker that is unfinished but not imported (in progress, deferred, invalid, in a
    cycle...) would keep the issue from ever being ready, and ygg cannot wait for a task it
    does not have: the issue is skipped now and imported by a later run once that is resolved.
    """
    imported: set[str] = set()
    for key in order:
        if key in skipped:
            continue
        missing = sorted(blockers[key] - imported)
        if missing:
            first = skipped.get(missing[0])
            why = first.reason if first else "not importable"
            detail = f"blocked by {missing[0]}, which is not imported ({why})"
            skipped[key] = Skip(by_id[key].line, key, "blocked_by_skipped", detail)
            continue
        imported.add(key)
        plan.tasks.append(PlannedTask(drafts[key], by_id[key].line, tuple(sorted(blockers[key]))))
