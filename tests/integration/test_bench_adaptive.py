"""`ygg bench adaptive` at a tiny size, as a user runs it: the real CLI, real dispatchers and
queues on the sim backend's host models. Timing is noisy: the test checks the structure, and
what holds however fast the machine is (no fixed run past its slots, the limit in its bounds)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.integration.test_bench import _refused, ygg

SVG = "{http://www.w3.org/2000/svg}"


def test_bench_adaptive_json_and_svg(tmp_path: Path) -> None:
    svg = tmp_path / "limit.svg"
    args = ["--models", "knee-2,503-past-6", "--ceiling", "3", "--duration", "8"]
    done = ygg("bench", "adaptive", *args, "--scale", "0.01", "--json", "--svg", str(svg),
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [m["name"] for m in report["models"]] == ["knee-2", "503-past-6"]
    for model in report["models"]:
        assert [f["setting"] for f in model["fixed"]] == ["1", "2", "3"]
        assert all(f["done"] > 0 and f["duration_s"] == 8 for f in model["fixed"])
        adaptive = model["adaptive"]
        assert adaptive["duration_s"] == 40 and adaptive["done"] > 0
        limits = [n for _, n in adaptive["limits"]]
        assert limits and limits[0] == 1 and all(1 <= n <= 3 for n in limits)
        assert model["best_fixed"] in {"1", "2", "3"}
        assert set(model["passed"]) == {"throughput", "p95", "converged"}
    panels = ET.parse(svg).getroot().findall(f"{SVG}polyline")
    assert len(panels) == 2  # one limit line per model
    text = ygg("bench", "adaptive", *args, "--scale", "0.01", cwd=tmp_path)
    assert text.returncode == 0 and "targets met" in text.stdout


def test_bench_adaptive_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "knee-2" in _refused(capsys, "adaptive", "--models", "knee-3")
    assert "alone" in _refused(capsys, "adaptive", "six")
    assert "only for" in _refused(capsys, "six", "--ceiling", "4")
    assert "--ceiling" in _refused(capsys, "adaptive", "--ceiling", "0")
    assert "--duration" in _refused(capsys, "adaptive", "--duration", "-1")
    assert "http" in _refused(capsys, "adaptive", "--llm-server", "localhost:8091")
