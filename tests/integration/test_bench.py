"""`ygg bench` and `ygg demo` as a user runs them: the real CLI, real dispatchers, real queues.

Timing is noisy, so the tests check the structure and the invariants (every task done, never
more tasks at once than the mode's slots) and only loose relations between the makespans.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import subprocess_env
from ygg.bench import max_concurrency
from ygg.cli import main

SVG_RECT = "{http://www.w3.org/2000/svg}rect"
SLOTS = {"surtr-reasoning": 2, "fenrir-chat": 3, "skadi-code": 2}


def ygg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ygg", *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _task_rects(path: Path) -> int:
    root = ET.parse(path).getroot()
    return sum(1 for r in root.iter(SVG_RECT) if r.get("class") == "task")


def _check_run(run: dict[str, Any], mode: str, tasks: int) -> None:
    assert run["mode"] == mode
    assert run["done"] == run["tasks"] == tasks
    assert run["statuses"] == {"done": tasks}
    for name, pool in run["pools"].items():
        assert pool["slots"] == SLOTS[name]
        assert pool["mode_slots"] == (1 if mode == "legacy" else SLOTS[name])
        assert pool["max_concurrency"] <= pool["mode_slots"]
    if "spans" in run:
        assert len(run["spans"]) == tasks
        for name, pool in run["pools"].items():
            spans = [(s["start_s"], s["end_s"]) for s in run["spans"] if s["pool"] == name]
            assert max_concurrency(spans) <= pool["mode_slots"]


def test_bench_json_figures(tmp_path: Path) -> None:
    svg = tmp_path / "bench.svg"
    done = ygg(
        "bench", "six", "twenty-twenty", "--scale", "0.005", "--json", "--svg", str(svg),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # nothing but the document on stdout
    assert doc["scale"] == 0.005
    scenarios = {s["name"]: s for s in doc["scenarios"]}
    assert list(scenarios) == ["six", "twenty-twenty"]
    expected = {"six": (6, 130, 85), "twenty-twenty": (40, 200, 100)}
    for name, (tasks, legacy_bound, async_bound) in expected.items():
        scenario = scenarios[name]
        assert scenario["tasks"] == tasks and not scenario["throughput"]
        legacy, fast = scenario["runs"]["legacy"], scenario["runs"]["async"]
        _check_run(legacy, "legacy", tasks)
        _check_run(fast, "async", tasks)
        assert (legacy["bound_s"], fast["bound_s"]) == (legacy_bound, async_bound)
        for run in (legacy, fast):  # a sim task sleeps its whole duration: never under the bound
            assert run["makespan_s"] >= 0.97 * run["bound_s"]
            assert abs(run["ratio"] - run["makespan_s"] / run["bound_s"]) < 1e-3
        assert legacy["makespan_s"] >= fast["makespan_s"]
        assert fast["ratio"] < 1.9  # loose: running like legacy would be about 1.5 and 2.0
        assert scenario["speedup"] > 1
    assert _task_rects(svg) == 6 * 2 + 40 * 2


def test_bench_throughput_reports_tasks_per_second(tmp_path: Path) -> None:
    done = ygg("bench", "throughput", "--tasks", "300", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (scenario,) = json.loads(done.stdout)["scenarios"]
    assert scenario["throughput"] and scenario["tasks"] == 300
    for mode in ("legacy", "async"):
        run = scenario["runs"][mode]
        _check_run(run, mode, 300)
        assert run["tasks_per_s"] > 0 and run["bound_s"] is None and "spans" not in run


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Runs the CLI in this process (the input is refused before anything runs)."""
    with pytest.raises(SystemExit) as exit_:
        main(["bench", *args])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2, (args, err)
    assert out == "" and err.startswith("ygg: ") and "Traceback" not in err
    return err


def test_bench_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(capsys, "six", "sevn")
    assert "sevn" in err and "six, twenty-twenty, mixed-thirty, throughput" in err
    for args in (["--scale", "0"], ["--scale", "-0.5"], ["--mode", "fast"], ["--tasks", "0"]):
        _refused(capsys, "six", *args)
    assert "writable" in _refused(capsys, "six", "--svg", str(tmp_path / "no" / "x.svg"))


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    done = ygg("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for text in ("six:", "twenty-twenty:", "speed-up", "legacy:", "async:", "ygg-demo.svg"):
        assert text in done.stdout
    assert _task_rects(tmp_path / "ygg-demo.svg") == 6 * 2 + 40 * 2
