"""Human-readable renderings for the CLI (the --json forms come from Task.to_json)."""

from __future__ import annotations

from typing import Any

from ygg.config import Config
from ygg.store import Task
from ygg.store.model import BreakerState, iso


def task_line(task: Task) -> str:
    pool = task.pool or "-"
    return (
        f"{task.id:>6}  p{task.priority}  {task.status:<9}  {task.kind:<16} {pool:<16} "
        f"{task.attempts}/{task.max_attempts}  {task.title}"
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
    if task.tokens_in is not None or task.tokens_out is not None:
        lines.append(f"  tokens    {task.tokens_in} in, {task.tokens_out} out")
    if task.error:
        lines.append(f"  error     {task.error}")
    if task.result is not None:
        lines += ["  result", *("    " + line for line in task.result.splitlines())]
    return "\n".join(lines)


_BREAKER_RANK = {"closed": 0, "half-open": 1, "open": 2}


def breaker_of(states: list[BreakerState], pool: str) -> tuple[str, str | None]:
    """The most cautious breaker state the daemons report for `pool`, with its reason."""
    mine = [s for s in states if s.pool == pool]
    if not mine:
        return "closed", None
    worst = max(mine, key=lambda s: _BREAKER_RANK[s.state])
    return worst.state, worst.reason


def pool_rows(
    config: Config,
    load: dict[str, tuple[int, int]],
    health: dict[str, str],
    breakers: list[BreakerState],
) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "host": pool.host,
            "backend": pool.backend,
            "slots": pool.slots,
            "running": load[name][0],
            "queued": load[name][1],
            "breaker": (state := breaker_of(breakers, name))[0],
            "breaker_reason": state[1],
            "health": health.get(name, "unknown"),
            "kinds": list(pool.kinds),
        }
        for name, pool in config.pools.items()
    ]
