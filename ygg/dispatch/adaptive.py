"""Adaptive slots: how many attempts a pool may run at once, learned from how its host answers.

Pure (no I/O, no clock): the pool feeds it each finished attempt and each overload sign, and
applies the limit it gives. The ideas come from Netflix's concurrency-limits and the
Kubernetes inference gateway's saturation detector:

- Vegas: a host that batches runs each request at full speed up to its knee; past it, the
  requests share its throughput, so the time per output token grows by running / knee. With the
  unloaded time per token as baseline, `limit * (1 - baseline / now)` estimates how many
  requests wait for the batch: about 0 at or below the knee, about `limit - knee` above it.
  Below half a request the limit goes up; above one and a half it goes down by the excess (so
  one window finds the knee from above); in between it holds at about one past the knee, as
  Vegas keeps a few packets queued: the host always has the next request when one ends. But
  not if that one request slows every other by more than `slowdown_max` (a knee of 1): then
  the limit stays at the knee. Past slow start, growing takes `grow_after` windows in a row
  that find room, so one lucky window does not move it.
- Time to first token as the second signal: a host with a fixed number of decoding slots
  (llama.cpp's --parallel) queues the extra requests before their first token, which the time
  per token never shows; a first token much later than the baseline's means the host queues.
- Never the end-to-end latency: it grows with the answer's length, not with the load.
- AIMD on a host that reports no timings: a window of successes grows the limit by one.
- AIMD's back-off on a hard signal: a 429, a 503 or a timeout says "too many" outright, and
  the limit drops below what was running when it came; so does the host's own saturation
  report (the inference gateway's detector: vLLM requests waiting or KV cache above ~0.8,
  Ollama spilling to the CPU), given as `host_saturated(reason)` once per window at most.
- Stability: a level that proved too many is not tried again for a while, and that while
  doubles each time it proves too many again. At steady state the limit holds one past the
  knee and every `probe_down_every` windows runs one window a slot lower to re-measure the
  unloaded figures (BBR's ProbeRTT); below a hard limit (a 503) it sits just under it and
  tries one more after each hold. Either way it moves by one around its value.
- Slow start (TCP): until the first sign of load the limit doubles each window, so a pool
  converges within a minute; the overshoot is undone in one step by the Vegas estimate.

Decisions are taken once a window of completions is in: at least `window` and two per slot of
the limit (every slot has spoken, twice, so a stall of the machine is not read as the host's;
in slow start half the limit is enough), after skipping the completions that started under the
previous limit.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tuning:
    window: int = 4  # completions per decision, at least
    window_per_slot: int = 2  # ... and at least this many per slot of the limit
    # Vegas: how many requests may wait for the batch. Below `grow_below` the host has room;
    # above `shrink_above`, too many wait. In between (about one waiting) the limit holds: one
    # request ready at the host covers the moment between one of ours ending and the next.
    grow_below: float = 0.5
    shrink_above: float = 1.5
    # ... unless that one costs every request more than this much time per token: one more
    # request that nearly doubles every request's time adds next to nothing (a knee of 1)
    slowdown_max: float = 0.8
    grow_after: int = 2  # past slow start, windows in a row that find room before growing
    first_token_ratio: float = 2.0  # first token later than this times its baseline: queueing
    hold_windows: int = 8  # a level that proved too many is not tried for this many windows
    hold_max_windows: int = 128  # ... doubling on each repeat, up to this
    history: int = 24  # the baselines are the least of this many windows' figures
    probe_down_every: int = 12  # holding, one window in this many runs one slot lower (BBR's
    # ProbeRTT): it re-measures the unloaded figures, so the baselines follow a slower host


@dataclass
class _Window:
    skip: int  # completions still to ignore: they started under the previous limit
    per_token_s: list[float] = field(default_factory=list)
    first_token_s: list[float] = field(default_factory=list)
    untimed: int = 0  # completions without a time per token
    saturated: bool = False  # a host-saturation hint was acted on in this window


class AdaptiveLimit:
    """The limit of one pool, between `min_limit` and `max_limit`; starts at `min_limit`."""

    def __init__(self, min_limit: int, max_limit: int, tuning: Tuning | None = None) -> None:
        if not 1 <= min_limit <= max_limit:
            raise ValueError(f"need 1 <= min_limit <= max_limit, not {min_limit}, {max_limit}")
        self.min_limit, self.max_limit = min_limit, max_limit
        self.tuning = tuning or Tuning()
        self.limit = min_limit
        self.slow_start = True
        self.reason = "start"  # why the limit last moved
        self._history: deque[tuple[float, float | None]] = deque(maxlen=self.tuning.history)
        self._steady_windows = 0
        self._room_windows = 0  # windows in a row that found room
        self._too_many: dict[int, tuple[int, int]] = {}  # level -> (windows left, next hold)
        self._window = _Window(skip=0)

    # --- inputs ------------------------------------------------------------------------------
    def succeeded(self, per_token_s: float | None, first_token_s: float | None = None) -> bool:
        """One attempt finished well; says whether the limit moved. `per_token_s`: its
        generation time over its output tokens; either figure may be unknown (None)."""
        w = self._window
        if w.skip > 0:
            w.skip -= 1
            return False
        if per_token_s is not None and per_token_s > 0 and math.isfinite(per_token_s):
            w.per_token_s.append(per_token_s)
            if first_token_s is not None and first_token_s >= 0 and math.isfinite(first_token_s):
                w.first_token_s.append(first_token_s)
        else:
            w.untimed += 1
        if len(w.per_token_s) + w.untimed < self._window_size():
            return False
        if len(w.per_token_s) < w.untimed:  # a host that reports no timings: AIMD on errors
            return self._room(self.tuning)
        return self._decide()

    def overloaded(self, running: int, reason: str) -> bool:
        """The host refused (429, 503) or timed out while `running` attempts (this one
        included) were out: fewer than that is the most it takes now."""
        level = min(self.limit, max(running, 1))
        return self._back_off(level, level - 1, reason)

    def host_saturated(self, reason: str | None) -> bool:
        """The host's own load report (None: not saturated). Acted on once per window, since
        a host keeps saying it until the limit has taken effect."""
        if reason is None or self._window.saturated:
            return False
        moved = self._back_off(self.limit, self.limit - 1, f"host: {reason}")
        self._window.saturated = True
        return moved

    # --- decisions ---------------------------------------------------------------------------
    def _decide(self) -> bool:
        # Medians: one attempt held up by something else (a pause, a long prompt) is no trend.
        w, t = self._window, self.tuning
        per_token = statistics.median(w.per_token_s)
        first_token = statistics.median(w.first_token_s) if w.first_token_s else None
        self._tick_holds()
        self._history.append((per_token, first_token))
        queued = self._queued(per_token)
        late = self._late(first_token)
        if queued > t.shrink_above:
            excess = max(1, round(queued - (t.grow_below + t.shrink_above) / 2))
            return self._back_off(self.limit, self.limit - excess, "per_token")
        if late:
            return self._back_off(self.limit, self.limit - 1, "first_token")
        if self._slowdown(per_token) > t.slowdown_max:
            return self._back_off(self.limit, self.limit - 1, "slowdown")
        if queued >= t.grow_below:
            return self._hold()
        return self._room(t)

    def _room(self, t: Tuning) -> bool:
        # This level runs well now: what proved too many at or below it is forgotten.
        self._too_many = {lvl: v for lvl, v in self._too_many.items() if lvl > self.limit}
        self._room_windows += 1
        if self.slow_start or self._room_windows >= t.grow_after:
            return self._grow()
        return self._move(self.limit, self.reason)

    @property
    def per_token_base(self) -> float | None:
        return min((p for p, _ in self._history), default=None)

    @property
    def first_token_base(self) -> float | None:
        return min((f for _, f in self._history if f is not None), default=None)

    def _hold(self) -> bool:
        """About one request waits: stay, but now and then run a window one lower."""
        self._room_windows = 0
        self._steady_windows += 1
        if self._steady_windows >= self.tuning.probe_down_every:
            self._steady_windows = 0
            return self._move(self.limit - 1, "probe_down")
        return self._move(self.limit, self.reason)

    def _window_size(self) -> int:
        """Completions per decision: every slot heard from; in slow start half as many (the
        estimate only has to say "room" or "far too many" then)."""
        if self.slow_start:
            return max(2, self.limit // 2)
        return max(self.tuning.window, self.tuning.window_per_slot * self.limit)

    def _queued(self, per_token_s: float) -> float:
        """Vegas: how many requests wait for the batch, from the slow-down per token."""
        base = self.per_token_base  # this window's figure included
        if base is None or per_token_s <= base:
            return 0.0
        return self.limit * (1.0 - base / per_token_s)

    def _slowdown(self, per_token_s: float) -> float:
        base = self.per_token_base
        return 0.0 if base is None or base <= 0 else per_token_s / base - 1.0

    def _late(self, first_token_s: float | None) -> bool:
        base = self.first_token_base
        if first_token_s is None or base is None or base <= 0:
            return False
        return first_token_s > self.tuning.first_token_ratio * base

    def _grow(self) -> bool:
        step = self.limit if self.slow_start else 1
        target = min(self.limit + step, self.max_limit)
        while target > self.limit and self._held(target):
            target -= 1  # the next level proved too many lately: grow up to below it
        return self._move(target, "slow_start" if self.slow_start else "probe")

    def _back_off(self, level: int, target: int, reason: str) -> bool:
        """`level` proved too many: hold it (and above) for a while, go to `target`."""
        self.slow_start = False
        self._room_windows = 0
        _, hold = self._too_many.get(level, (0, self.tuning.hold_windows))
        self._too_many[level] = (hold, min(hold * 2, self.tuning.hold_max_windows))
        return self._move(min(target, self.limit - 1), reason)

    def _held(self, level: int) -> bool:
        return any(left > 0 for lvl, (left, _) in self._too_many.items() if lvl <= level)

    def rebound(self, min_limit: int, max_limit: int) -> None:
        """A reload changed `min_slots` or `slots`: the limit stays, inside the new bounds."""
        if not 1 <= min_limit <= max_limit:
            raise ValueError(f"need 1 <= min_limit <= max_limit, not {min_limit}, {max_limit}")
        self.min_limit, self.max_limit = min_limit, max_limit
        self.limit = max(min_limit, min(max_limit, self.limit))

    def adopt(self, limit: int) -> None:
        """The shared limit as the store holds it (another daemon's controller, or a reload):
        go on from there, inside our bounds. The limit we hold already (read back on every
        refresh) changes nothing: its window of measurements goes on."""
        if max(self.min_limit, min(self.max_limit, limit)) != self.limit:
            self._move(limit, "shared")

    def _tick_holds(self) -> None:
        for level, (left, hold) in list(self._too_many.items()):
            self._too_many[level] = (max(left - 1, 0), hold)

    def _move(self, target: int, reason: str) -> bool:
        target = max(self.min_limit, min(self.max_limit, target))
        before = self.limit
        if target != before:
            self._room_windows = 0
        # A new window either way; after a move, what runs now started under the old limit.
        self._window = _Window(skip=before if target != before else 0)
        if target == before:
            return False
        self.limit, self.reason = target, reason
        return True
