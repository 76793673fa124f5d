"""ygg on PostgreSQL beside procrastinate and pgqueuer, on one throwaway cluster, in one run.

    .venv/bin/python scripts/pg_bench.py [--tasks 5000] [--slots 10,64] [--depths 1000,1000000]
        [--claims-each 149,1000]

Starts its own PostgreSQL 15 cluster (tests/support/pg.py: fsync off, 127.0.0.1) and measures,
each case on a fresh database of that cluster:
- drain: N sim tasks of 0 s, one pool of `--slots` slots (10, then 64; the limit held across
  every daemon by its slot rows), 1, 2 and 4 `ygg loop --until-idle` processes; and one daemon
  on SQLite;
- submit→start: an idle daemon, this process enqueueing one task at a time (NOTIFY wakes it);
- claim latency at each depth: one claim+complete at a time straight through the store;
- procrastinate and pgqueuer (with and without its concurrency limit) draining the same N
  no-op jobs, through scripts/pg_compare (their own venv, installed on first use).
Every drain on PostgreSQL also gives the CPU it cost per task: the daemons' (or the
competitor's worker's) and the server's. Prints one table with the ratios the targets of
issue 11 are stated in.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support.pg
sys.path.insert(0, str(HERE / "pg_compare"))  # run.py: the competitors' harness

import _pg_bench_ygg as ygg_side  # noqa: E402
import run as compare  # noqa: E402  (scripts/pg_compare/run.py)

from tests.support.pg import PgCluster  # noqa: E402

Row = tuple[str, str, str]  # figure, value, note


class Bench:
    def __init__(self, args: argparse.Namespace, cluster: PgCluster) -> None:
        self.args = args
        self.cluster = cluster
        self.rows: list[Row] = []
        self.rates: dict[str, float] = {}
        self.cpu_us: dict[str, float] = {}  # CPU per task, the system's and the server's
        self._databases = 0

    def database(self) -> str:
        self._databases += 1
        return self.cluster.create_database(f"ygg_{self._databases}")

    def step(self, what: str) -> float:
        print(f"  {what} …", flush=True)
        return time.monotonic()

    def drains(self) -> None:
        n = self.args.tasks
        for slots in self.slot_settings():
            for daemons in (1, 2, 4):
                self.step(f"ygg drain, {daemons} daemon(s), {slots} slots")
                result = ygg_side.drain_pg(
                    self.database(), daemons, n, slots, self.cluster.postmaster_pid()
                )
                self._drain_row(f"ygg, PostgreSQL, {daemons} daemon(s), {slots} slots", result)
                self.rates[f"ygg pg {daemons} {slots}"] = result.rate
                self.cpu_us[f"ygg pg {daemons} {slots}"] = sum(result.cpu_per_task_us())
            self.step(f"ygg drain, SQLite, {slots} slots")
            result = ygg_side.drain_sqlite(n, slots)
            self._drain_row(f"ygg, SQLite, 1 daemon, {slots} slots", result)
            self.rates[f"ygg sqlite {slots}"] = result.rate

    def slot_settings(self) -> list[int]:
        return [int(s) for s in self.args.slots.split(",")]

    def _drain_row(self, label: str, result: ygg_side.DrainResult) -> None:
        note = f"{result.done}/{result.tasks} done in {result.span_s:.2f} s"
        if result.server_cpu_s:
            daemon_us, server_us = result.cpu_per_task_us()
            note += f"; CPU per task: daemons {daemon_us:.0f} µs + server {server_us:.0f} µs"
        self.rows.append((f"drain: {label}", f"{result.rate:,.0f} tasks/s", note))

    def latency(self) -> None:
        self.step("submit→start")
        samples = ygg_side.submit_to_start_ms(self.database(), self.args.latency_tasks)
        p50, p99 = statistics.median(samples), ygg_side.percentile(samples, 0.99)
        note = f"{len(samples)} tasks, max {max(samples):.2f} ms; target p50 ≤ 5, p99 ≤ 25"
        self.rows.append(
            ("submit→start through NOTIFY, p50 / p99", f"{p50:.2f} / {p99:.2f} ms", note)
        )

    def depths(self) -> None:
        results = []
        depths = [int(d) for d in self.args.depths.split(",")]
        # As many claims at every depth, as many as the shallowest queue holds for the pool
        # (3 kinds of 20): each claim skips the other kinds' tasks ahead of it, more with
        # every claim made, so equal counts keep depth the only difference.
        equal = min(self.args.claims, max(min(depths) * 3 // 20 - 1, 1))
        # --claims-each: a count per depth, to time a deep queue after many claims (the
        # case where a claim that skips other kinds' tasks grows slower with every claim).
        counts = [int(c) for c in self.args.claims_each.split(",")] if self.args.claims_each else []
        for depth, claims in zip(depths, counts or [equal] * len(depths), strict=True):
            self.step(f"claim latency at {depth:,} queued ({claims} claims)")
            results.append(ygg_side.claim_depth(self.database(), depth, claims))
        for r in results:
            ratio = r.claim_p50_ms / results[0].claim_p50_ms
            self.rows.append(
                (
                    f"claim at {r.depth:,} queued: p50 / p99 (claim+complete p50)",
                    f"{r.claim_p50_ms:.2f} / {r.claim_p99_ms:.2f} ms ({r.round_trip_p50_ms:.2f})",
                    f"p50 {ratio:.2f}x the first depth; target ≤ 2x",
                )
            )

    def competitors(self) -> None:
        python = compare.ensure_venv(self.args.venv)
        self.rows.append(("competitors' versions", compare.versions(python), ""))
        limit = self.slot_settings()[0]
        options = argparse.Namespace(
            jobs=self.args.tasks, timeout_s=self.args.timeout_s, no_analyze=False,
            concurrency=limit, limit=limit, pgqueuer_drivers="asyncpg",
        )  # fmt: skip
        for n, case in enumerate(compare.cases(options)):
            self.step(f"{case.script} {' '.join(case.args)}")
            record = compare.run_case(python, self.cluster, 100 + n, case, options)
            self._competitor_row(record)

    def _competitor_row(self, r: dict[str, Any]) -> None:
        label = f"drain: {r['system']}, {r['setting']}"
        if "error" in r:
            self.rows.append((label, "-", r["error"][:100]))
            return
        done = r["jobs"] - r["left"]
        rate = done / r["seconds"] if r["seconds"] else 0.0
        note = f"{done}/{r['jobs']} done in {r['seconds']:.2f} s" + (
            " (timed out)" if r["timed_out"] else ""
        )
        worker_us, server_us = (r[k] / max(done, 1) * 1e6 for k in ("cpu_s", "server_cpu_s"))
        note += f"; CPU per task: worker {worker_us:.0f} µs + server {server_us:.0f} µs"
        self.rows.append((label, f"{rate:,.0f} tasks/s", note))
        key = r["system"]
        if key == "pgqueuer" and "concurrency_limit=" in r["setting"]:
            key = "pgqueuer limit"
        self.rates[key] = rate
        self.cpu_us[key] = worker_us + server_us

    def ratios(self) -> None:
        for slots in self.slot_settings():
            ygg1 = self.rates.get(f"ygg pg 1 {slots}", 0.0)
            for key, target in (
                ("pgqueuer", "target ≥ 2x"), ("pgqueuer limit", ""), ("procrastinate", ""),
                (f"ygg sqlite {slots}", ""),
            ):  # fmt: skip
                if ygg1 and self.rates.get(key):
                    ratio = f"{ygg1 / self.rates[key]:.2f}x"
                    self.rows.append((f"ratio: ygg 1 daemon, {slots} slots ÷ {key}", ratio, target))
            ygg1_cpu = self.cpu_us.get(f"ygg pg 1 {slots}", 0.0)
            if ygg1_cpu and self.cpu_us.get("pgqueuer"):
                ratio = f"{self.cpu_us['pgqueuer'] / ygg1_cpu:.2f}x"
                label = (
                    f"ratio: CPU per task, pgqueuer without a limit ÷ ygg 1 daemon, {slots} slots"
                )
                self.rows.append((label, ratio, "the system's and the server's CPU together"))
            for daemons in (2, 4):
                if ygg1 and self.rates.get(f"ygg pg {daemons} {slots}"):
                    ratio = f"{self.rates[f'ygg pg {daemons} {slots}'] / ygg1:.2f}x"
                    label = f"ratio: ygg {daemons} daemons ÷ 1 daemon, {slots} slots"
                    self.rows.append((label, ratio, ""))


def table(rows: list[Row]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000, help="drained by every system")
    parser.add_argument(
        "--slots", default="10,64", help="ygg's pool, each in turn; the first: pgqueuer's limit"
    )
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--depths", default="1000,1000000")
    parser.add_argument("--claims", type=int, default=1000, help="claims timed at each depth")
    parser.add_argument(
        "--claims-each",
        default="",
        help="claims timed at each depth, e.g. 149,1000 (default: equal)",
    )
    parser.add_argument("--timeout-s", type=float, default=120.0, help="each competitor's bound")
    parser.add_argument("--only", default="drain,latency,depth,competitors")
    parser.add_argument("--venv", type=Path, default=compare.default_venv())
    return parser.parse_args()


def main() -> None:
    args = arguments()
    parts = args.only.split(",")
    with PgCluster() as cluster:
        bench = Bench(args, cluster)
        for part, run_part in (
            ("drain", bench.drains), ("competitors", bench.competitors),
            ("latency", bench.latency), ("depth", bench.depths),
        ):  # fmt: skip
            if part in parts:
                run_part()
        bench.ratios()
    print(f"\n{args.tasks:,} tasks of 0 s per drain; PostgreSQL 15 (fsync off), one run:\n")
    print(table([("figure", "value", "note"), *bench.rows]))


if __name__ == "__main__":
    main()
