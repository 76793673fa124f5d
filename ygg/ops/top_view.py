"""`ygg top`'s screen as a pure function of a Snapshot, so it can be tested without a terminal."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ygg.ops.snapshot import PoolRow, RunningRow, Snapshot
from ygg.store.model import US

MAX_RUNNING_ROWS = 40  # a terminal shows no more anyway; the rest are counted
BREAKER_STYLES = {"closed": "green", "half-open": "yellow", "open": "bold red"}
STATUS_STYLES = {"running": "cyan", "queued": "yellow", "failed": "red", "blocked": "red"}


def render_top(snapshot: Snapshot, *, source: str, now_us: int) -> RenderableType:
    """The whole screen: a header, the pools, task counts, and the running attempts."""
    return Group(
        _header(snapshot, source),
        _pools_table(snapshot["pools"]),
        _task_counts(snapshot["tasks"]),
        _running_table(snapshot["running"], now_us),
    )


def _header(snapshot: Snapshot, source: str) -> Text:
    daemon = snapshot["daemon"]
    text = Text("ygg top", style="bold")
    if daemon["pid"] is not None:
        text.append(f"  daemon pid {daemon['pid']} ({daemon['mode']})")
    else:
        text.append("  no daemon running", style="yellow")
    if daemon["started_at"]:
        text.append(f", started {daemon['started_at']}")
    text.append(f"\n{source}  ·  q or Ctrl-C quits", style="dim")
    return text


def _bar(running: int, limit: int, slots: int, width: int = 6) -> Text:
    """Running tasks, then the free slots under the limit, then those beyond it (`·`)."""
    if slots <= 0:
        return Text("░" * width, style="dim")
    filled = min(width, round(width * running / slots))
    usable = max(filled, min(width, round(width * limit / slots)))
    return (
        Text("█" * filled, style="cyan")
        + Text("░" * (usable - filled), style="dim")
        + Text("·" * (width - usable), style="dim")
    )


def limit_cell(limit: int, slots: int) -> Text:
    """The pool's limit now (adaptive slots move it, other daemons' files may set it): marked
    when it holds the pool under its configured slots."""
    return Text(str(limit), style="yellow" if limit < slots else "")


def _pools_table(pools: list[PoolRow]) -> Table:
    table = Table(title="pools", title_justify="left", expand=False)
    # On a narrow terminal the other columns are cut first: the pool name is the row's key.
    table.add_column(
        "pool", no_wrap=True, min_width=max((len(p["name"]) for p in pools), default=4)
    )
    for column in ("host", "backend"):
        table.add_column(column)
    for column in ("running", "slots", "limit", "queued"):
        table.add_column(column, justify="right")
    table.add_column("load")
    table.add_column("breaker")
    for pool in pools:
        # A daemon from before limits were shown has no `limit`: its slots are its limit.
        limit = pool.get("limit", pool["slots"])
        breaker = Text(pool["breaker"], style=BREAKER_STYLES.get(pool["breaker"], "dim"))
        if pool["breaker_reason"]:
            breaker.append(f" ({pool['breaker_reason']})", style="dim")
        table.add_row(
            pool["name"],
            pool["host"],
            pool["backend"],
            str(pool["running"]),
            str(pool["slots"]),
            limit_cell(limit, pool["slots"]),
            str(pool["queued"]),
            _bar(pool["running"], limit, pool["slots"]),
            breaker,
        )
    return table


def _task_counts(tasks: dict[str, int]) -> Text:
    text = Text("tasks: ", style="bold")
    for i, (status, count) in enumerate(tasks.items()):
        if i:
            text.append("  ")
        text.append(f"{status} {count}", style=STATUS_STYLES.get(status, "") if count else "dim")
    return text


def elapsed(started_at: str | None, now_us: int) -> str:
    """How long ago an ISO 8601 UTC time was, as `42s`, `3m05s` or `2h07m`."""
    if not started_at:
        return "-"
    started_us = int(datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp() * US)
    seconds = max(0, (now_us - started_us) // US)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _running_table(running: list[RunningRow], now_us: int) -> Table:
    table = Table(title=f"running ({len(running)})", title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("pool")
    table.add_column("kind")
    table.add_column("try", justify="right")
    table.add_column("for", justify="right")
    table.add_column("title", overflow="ellipsis", no_wrap=True, max_width=60)
    for row in running[:MAX_RUNNING_ROWS]:
        table.add_row(
            str(row["id"]),
            row["pool"] or "-",
            row["kind"],
            str(row["attempt"]),
            elapsed(row["started_at"], now_us),
            row["title"],
        )
    if len(running) > MAX_RUNNING_ROWS:
        table.caption = f"… and {len(running) - MAX_RUNNING_ROWS} more"
    return table
