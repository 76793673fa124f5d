"""The arithmetic of the benchmark: lower bounds, concurrency and lanes. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Interval = tuple[float, float]  # (start, end), end >= start


def pool_bound(durations: Sequence[float], slots: int) -> float:
    """The shortest time in which `slots` parallel slots can run tasks of these `durations`.

    A slot runs one task at a time and a task is never split, so three facts each bound the
    makespan of the pool from below, and the bound is the largest of them:

    - waves:   some slot runs at least ceil(n / slots) of the n tasks, each at least as long
               as the shortest one: ceil(n / slots) * min(durations);
    - work:    the slots share sum(durations) of work: sum(durations) / slots;
    - longest: no schedule ends before its longest task does: max(durations).

    For n tasks of equal duration d this is ceil(n / slots) * d, which a dispatcher that keeps
    every slot busy achieves exactly: 20 tasks of 10 s take 100 s on 2 slots, 70 s on 3
    (seven waves; the last one only two tasks wide) and 200 s on 1.
    """
    if slots < 1:
        raise ValueError(f"slots must be at least 1, not {slots}")
    if not durations:
        return 0.0
    waves = math.ceil(len(durations) / slots) * min(durations)
    work = sum(durations) / slots
    return max(waves, work, *durations)


def lower_bound(durations: Mapping[str, Sequence[float]], slots: Mapping[str, int]) -> float:
    """The makespan no dispatcher can beat: pools run in parallel, so the largest pool bound.

    `durations` holds each pool's task durations, `slots` the slots the dispatcher uses in
    each pool: the configured slots for the async dispatcher, 1 for the legacy one.
    """
    return max((pool_bound(d, slots[pool]) for pool, d in durations.items()), default=0.0)


Instant = tuple[float, int]  # (time, 1 just after it): zero-length intervals hold an instant


def _bounds(interval: Interval) -> tuple[Instant, Instant]:
    """Half-open [start, end); a zero-length task still holds its slot for an instant, so it
    ends just after its start (it overlaps a task starting with it, not one ending there)."""
    start, end = interval
    return (start, 0), (end, 1 if end <= start else 0)


def max_concurrency(intervals: Sequence[Interval]) -> int:
    """How many intervals overlap at the busiest instant; one ending as another starts is not
    an overlap (a slot freed at t is taken again at t)."""
    events: list[tuple[Instant, int]] = []
    for interval in intervals:
        start, end = _bounds(interval)
        events += [(start, 1), (end, -1)]
    events.sort()  # at equal instants, ends (-1) before starts (+1)
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def assign_lanes(intervals: Sequence[Interval]) -> list[int]:
    """A lane for each interval (0, 1, ...), no two overlapping intervals on one lane.

    Greedy in order of start (ties in the order given): each interval takes the lowest-numbered
    lane that is free by its start. This uses exactly max_concurrency(intervals) lanes, so a
    pool that never ran more tasks at once than its slots fits in one lane per slot.
    """
    bounds = [_bounds(interval) for interval in intervals]
    order = sorted(range(len(intervals)), key=lambda i: (bounds[i][0], i))
    free_at: list[Instant] = []  # per lane: when its last interval ends
    lanes = [0] * len(intervals)
    for i in order:
        start, end = bounds[i]
        lane = next((n for n, t in enumerate(free_at) if t <= start), len(free_at))
        if lane == len(free_at):
            free_at.append(end)
        else:
            free_at[lane] = end
        lanes[i] = lane
    return lanes


def utilisation(busy_s: float, slots: int, makespan_s: float) -> float:
    """The share of the slots' time spent running tasks: busy_s / (slots * makespan_s)."""
    if makespan_s <= 0 or slots < 1:
        return 0.0
    return busy_s / (slots * makespan_s)
