"""`ygg status`: what the queue and the daemons on it say, read from the database alone.

The daemons record their breakers and any refused reload in the database, so this needs no
daemon to answer and shows every daemon's view, not just one's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ygg.config import Config
from ygg.ops.health import probe_all
from ygg.ops.snapshot import latest_telemetry
from ygg.ops.waiting import why_waiting
from ygg.store import STATUSES
from ygg.store.model import US, BreakerState, PoolLimit, iso, now_us

if TYPE_CHECKING:
    from ygg.store.base import Store


_BREAKER_RANK = {"closed": 0, "half-open": 1, "open": 2}


def breaker_of(states: list[BreakerState], pool: str) -> tuple[str, str | None]:
    """The most cautious breaker state the daemons report for `pool`, with its reason."""
    mine = [s for s in states if s.pool == pool]
    if not mine:
        return "closed", None
    worst = max(mine, key=lambda s: _BREAKER_RANK[s.state])
    return worst.state, worst.reason


def limit_fields(stored: PoolLimit | None, slots: int, live: set[int]) -> dict[str, Any]:
    """A pool's stored limit (every daemon's), where it came from, and what each live daemon's
    file says; `disagrees` lists the daemons whose file differs from the one that set it."""
    if stored is None:  # no daemon has run the pool yet: the file's slots will be its limit
        return {
            "limit": slots,
            "limit_source": None,
            "limit_set_by": None,
            "limit_set_at": None,
            "configured": {},
            "disagrees": [],
        }
    files = {d: n for d, n in stored.files.items() if d in live}
    return {
        "limit": stored.limit,
        "limit_source": stored.source,
        "limit_set_by": stored.set_by,
        "limit_set_at": iso(stored.set_us),
        "configured": {str(d): n for d, n in sorted(files.items())},
        "disagrees": [d for d in stored.disagreeing() if d in live],
    }


def pool_rows(
    config: Config,
    load: dict[str, tuple[int, int]],
    health: dict[str, str],
    breakers: list[BreakerState],
    limits: Mapping[str, PoolLimit] | None = None,
    live: set[int] | None = None,
    telemetry: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    limits, live = limits or {}, live or set()
    return [
        {
            "name": name,
            "host": pool.host,
            "backend": pool.backend,
            "slots": pool.slots,
            **limit_fields(limits.get(name), pool.slots, live),
            "running": load[name][0],
            "queued": load[name][1],
            "breaker": (state := breaker_of(breakers, name))[0],
            "breaker_reason": state[1],
            "health": health.get(name, "unknown"),
            "kinds": list(pool.kinds),
            "telemetry": (telemetry or {}).get(name),
        }
        for name, pool in config.pools.items()
    ]


def status_report(config: Config, store: Store, *, probe: bool) -> dict[str, Any]:
    """The document `ygg status --json` prints."""
    load = store.pool_load({name: pool.kinds for name, pool in config.pools.items()})
    counts = store.counts()
    daemons = store.daemons()
    live = {d.id for d in daemons}
    breakers = [b for b in store.breakers() if b.daemon in live]
    health = probe_all(config) if probe else {}
    telemetry = latest_telemetry(store.telemetry(), live)
    pools = pool_rows(config, load, health, breakers, store.pool_limits(), live, telemetry)
    fallbacks = {name: pool.fallback for name, pool in config.pools.items()}
    now = now_us()
    return {
        "pools": pools,
        "tasks": {s: counts.get(s, 0) for s in STATUSES},
        "waiting": [
            {
                "kind": head.kind,
                "task": head.task_id,
                "status": head.status,
                "priority": head.priority,
                "waiting_s": round((now - head.created_us) / US, 3),
                "why": why_waiting(head, pools, fallbacks, len(daemons), now),
            }
            for head in store.queue_heads()
        ],
        "daemons": [
            {
                "id": d.id,
                "host": d.hostname,
                "pid": d.pid,
                "mode": d.mode,
                "config_error": d.config_error,
            }
            for d in daemons
        ],
    }


def status_lines(report: dict[str, Any]) -> list[str]:
    """The human form of the same report."""
    lines = [
        f"{'pool':<20} {'host':<12} {'backend':<8} {'slots':>5} {'limit':>5} {'running':>7} "
        f"{'queued':>7}  {'breaker':<8} health"
    ]
    lines += [
        f"{p['name']:<20} {p['host']:<12} {p['backend']:<8} {p['slots']:>5} {p['limit']:>5} "
        f"{p['running']:>7} {p['queued']:>7}  {p['breaker']:<8} {p['health']}"
        for p in report["pools"]
    ]
    lines.append("tasks: " + ", ".join(f"{s} {n}" for s, n in report["tasks"].items()))
    lines += [
        f"next of {w['kind']}: task {w['task']} ({w['status']}): {w['why']}"
        for w in report["waiting"]
    ]
    lines += [
        f"breaker of {p['name']} is {p['breaker']}: {p['breaker_reason']}"
        for p in report["pools"]
        if p["breaker"] != "closed"
    ]
    lines += [disagreement(p) for p in report["pools"] if p.get("disagrees")]
    lines += telemetry_lines(report["pools"])
    lines.append(f"daemons: {len(report['daemons'])}")
    for d in report["daemons"]:
        refused = f"; last reload refused: {d['config_error']}" if d["config_error"] else ""
        lines.append(f"  #{d['id']} {d['mode']} pid {d['pid']} on {d['host']}{refused}")
    return lines


def telemetry_summary(data: dict[str, Any]) -> str:
    """What a host says of its load, in a few words: `3/4 running, 2 waiting, KV cache 85%`."""
    parts = []
    if data.get("running") is not None:
        slots = f"/{data['slots']}" if data.get("slots") else ""
        parts.append(f"{data['running']}{slots} running")
    if data.get("waiting") is not None:
        parts.append(f"{data['waiting']} waiting")
    if data.get("kv_cache_usage") is not None:
        parts.append(f"KV cache {data['kv_cache_usage']:.0%}")
    models = data.get("models") or []
    parts += [f"{m['name']} {m['vram_ratio']:.0%} in GPU memory" for m in models]
    if data.get("source") == "ollama" and not models:
        parts.append("no model loaded")
    return ", ".join(parts) or "nothing to report"


def telemetry_lines(pools: list[dict[str, Any]]) -> list[str]:
    """One line per pool whose host reports its load, then its warnings."""
    lines = []
    for pool in pools:
        data = pool.get("telemetry")
        if not data:
            continue
        saturated = f"; saturated: {data['saturated']}" if data.get("saturated") else ""
        lines.append(
            f"host of {pool['name']} ({data['source']}): {telemetry_summary(data)}{saturated}"
        )
        lines += [f"  warning: {w}" for w in data.get("warnings") or []]
    return lines


def disagreement(pool: dict[str, Any]) -> str:
    """One line: a pool's limit, who set it, and the daemons whose file says otherwise."""
    files = ", ".join(f"#{d} says {pool['configured'][str(d)]}" for d in pool["disagrees"])
    return (
        f"limit of {pool['name']} is {pool['limit']} ({pool['limit_source']}, set by daemon "
        f"#{pool['limit_set_by']} at {pool['limit_set_at']}); the files disagree: {files}"
    )
