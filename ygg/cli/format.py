"""Human-readable renderings for the CLI (the --json forms come from Task.to_json)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ygg.store.model import Task, iso

HEADER = ("id", "pri", "status", "kind", "pool", "tries", "title")


def _row(cells: tuple[str, ...]) -> str:
    id_, pri, status, kind, pool, tries, title = cells
    return f"{id_:>6}  {pri:<3}  {status:<9}  {kind:<16} {pool:<16} {tries:<5}  {title}"


def task_lines(tasks: Iterable[Task]) -> Iterator[str]:
    """`ygg list`: a header row, then one line per task."""
    yield _row(HEADER)
    for task in tasks:
        yield _row(
            (
                str(task.id),
                f"p{task.priority}",
                task.status,
                task.kind,
                task.pool or "-",
                f"{task.attempts}/{task.max_attempts}",
                task.title,
            )
        )


def task_text(task: Task) -> str:
    lines = [
        f"task {task.id}: {task.title}",
        f"  status    {task.status}",
        f"  kind      {task.kind} (priority {task.priority})",
        f"  pool      {task.pool or '-'}",
        f"  attempts  {task.attempts} of {task.max_attempts}",
    ]
    if task.depends_on:
        lines.append("  after     " + ", ".join(str(i) for i in task.depends_on))
    if task.params:
        lines.append("  params    " + ", ".join(f"{k}={v}" for k, v in task.params.items()))
    if task.external_id:
        lines.append(f"  external  {task.external_id}")
    for label, us in (
        ("created", task.created_us),
        ("started", task.started_us),
        ("finished", task.finished_us),
    ):
        if us is not None:
            lines.append(f"  {label:<9} {iso(us)}")
    if task.status == "queued" and task.run_after_us:
        lines.append(f"  retry at  {iso(task.run_after_us)}")
    lines += _usage(task)
    if task.error:
        lines.append(f"  error     {task.error}")
    if task.result is not None:
        lines += ["  result", *("    " + line for line in task.result.splitlines())]
    return "\n".join(lines)


def _usage(task: Task) -> list[str]:
    """Tokens in and out, and how fast they came, as far as the host told."""
    lines = []
    if task.tokens_in is not None or task.tokens_out is not None:
        lines.append(f"  tokens    {task.tokens_in} in, {task.tokens_out} out")
    speed = []
    if task.first_token_s is not None:
        speed.append(f"first token after {task.first_token_s:.3f} s")
    if task.tokens_per_s is not None:
        speed.append(f"{task.tokens_per_s:.1f} tokens/s")
    if speed:
        lines.append("  speed     " + ", ".join(speed))
    return lines
