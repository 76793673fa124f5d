"""Why a task is not running yet: one sentence for the head of each kind's line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ygg.store.model import Head, iso


def why_waiting(
    head: Head,
    pools: Sequence[Mapping[str, Any]],
    fallbacks: Mapping[str, Sequence[str]],
    daemons: int,
    now_us: int,
) -> str:
    """`pools`: the status rows (name, kinds, slots, running, breaker, breaker_reason);
    `fallbacks`: each pool's fallback pools, from the configuration."""
    if head.status == "waiting":
        ids = ", ".join(str(i) for i in head.blockers)
        return f"waiting on task {ids}" if ids else "its dependencies are being promoted"
    serving = [p for p in pools if head.kind in p["kinds"]]
    if not serving:
        return f"no configured pool serves kind {head.kind!r}"
    if head.run_after_us is not None and head.run_after_us > now_us:
        return f"retry backoff until {iso(head.run_after_us)}"
    if daemons == 0:
        return "no daemon is running on this queue"
    open_ = [p for p in serving if p["breaker"] != "closed"]
    if len(open_) == len(serving):
        by_name = {p["name"]: p for p in pools}
        spare = [
            by_name[f]
            for p in open_
            for f in fallbacks.get(p["name"], ())
            if f in by_name and by_name[f]["breaker"] == "closed"
        ]
        if not spare:
            first = open_[0]
            return f"breaker of {first['name']} is {first['breaker']}: {first['breaker_reason']}"
        serving = spare
    free = [p for p in serving if p["running"] < p["slots"]]
    if not free:
        names = ", ".join(f"{p['name']} {p['running']}/{p['slots']}" for p in serving)
        return f"pool full ({names})"
    return "next in line; a free slot will take it"
