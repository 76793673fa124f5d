"""A real `ygg loop` reading its hosts' load (FakeHost on 127.0.0.1): shown by `ygg status`
(text and --json, from the database), `/status` and `/metrics`; a host that says nothing shows
nothing; both loop modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemons import DaemonSet, run_ygg, wait_until, write_config
from tests.support.hosts import FakeHost
from tests.support.telemetry import GB, ollama_ps, vllm_metrics

WAIT_S = 20.0
SPILLED = ("qwen2.5-coder:7b", 6 * GB, 4_500_000_000)


@pytest.fixture
def hosts() -> Iterator[dict[str, FakeHost]]:
    with FakeHost("ollama") as ollama, FakeHost("openai") as vllm, FakeHost("openai") as silent:
        ollama.serve("/api/ps", ollama_ps(SPILLED))
        vllm.serve("/metrics", vllm_metrics(3, 2, 0.85))
        yield {"gpu": ollama, "vllm": vllm, "cloud": silent}


def configure(tmp_path: Path, hosts: dict[str, FakeHost]) -> Path:
    pools = "".join(
        f'\n[pools.{name}]\nbackend = "{backend}"\nurl = "{url}"\nmodel = "m"\n'
        f'kinds = ["{name}-work"]\n'
        for name, backend, url in (
            ("gpu", "ollama", hosts["gpu"].url),
            ("vllm", "openai", f"{hosts['vllm'].url}/v1"),
            ("cloud", "openai", f"{hosts['cloud'].url}/v1"),
        )
    )
    daemon = 'status_listen = "127.0.0.1:0"\ntelemetry_seconds = 0.2\nlog_level = "debug"'
    return write_config(tmp_path, pools, daemon=daemon)


def status_json(config: Path) -> dict[str, Any]:
    done = run_ygg(config, "status", "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def telemetry(report: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p["telemetry"] for p in report["pools"]}


def events(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def check_reported(found: dict[str, Any]) -> None:
    """What both /status and `ygg status --json` must say of the three hosts."""
    assert found["cloud"] is None  # it has neither /metrics nor /slots: nothing, no error
    vllm = found["vllm"]
    assert (vllm["source"], vllm["running"], vllm["waiting"]) == ("vllm", 3, 2)
    assert (vllm["kv_cache_usage"], vllm["saturated"]) == (0.85, "2 requests waiting in the host")
    gpu = found["gpu"]
    assert gpu["source"] == "ollama" and gpu["spilled_to_cpu"] == ["qwen2.5-coder:7b"]
    assert gpu["models"][0]["vram_ratio"] == 0.75
    assert gpu["warnings"] == [
        "model qwen2.5-coder:7b runs 25% on the CPU (4.5 GB of 6.0 GB in GPU memory)"
    ]


def test_the_daemon_shows_what_its_hosts_say(tmp_path: Path, hosts: dict[str, FakeHost]) -> None:
    config = configure(tmp_path, hosts)
    with DaemonSet(config) as daemons:
        daemon = daemons.start()

        def port() -> int | None:
            started = [
                e for e in events(daemons.log_of(daemon)) if e["event"] == "status_server_started"
            ]
            return int(started[0]["port"]) if started else None

        assert wait_until(lambda: port() is not None, WAIT_S)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port()}", timeout=5, trust_env=False
        ) as http:

            def live() -> dict[str, Any]:
                return telemetry(http.get("/status").json())

            assert wait_until(lambda: None not in (live()["gpu"], live()["vllm"]), WAIT_S)
            check_reported(live())
            # `ygg status` reads what the daemon recorded, from the database alone.
            assert wait_until(lambda: telemetry(status_json(config))["vllm"] is not None, WAIT_S)
            check_reported(telemetry(status_json(config)))
            text = run_ygg(config, "status").stdout
            assert (
                "host of vllm (vllm): 3 running, 2 waiting, KV cache 85%; "
                "saturated: 2 requests waiting in the host" in text
            )
            assert "host of gpu (ollama): qwen2.5-coder:7b 75% in GPU memory; saturated: " in text
            assert "  warning: model qwen2.5-coder:7b runs 25% on the CPU" in text
            assert "host of cloud" not in text

            samples = [
                s
                for f in text_string_to_metric_families(http.get("/metrics").text)
                for s in f.samples
                if s.name.startswith("ygg_host_")
            ]
            by_key = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
            assert by_key[("ygg_host_requests_running", (("pool", "vllm"),))] == 3
            assert by_key[("ygg_host_requests_waiting", (("pool", "vllm"),))] == 2
            assert by_key[("ygg_host_kv_cache_usage", (("pool", "vllm"),))] == 0.85
            vram = ("ygg_host_model_vram_ratio", (("model", "qwen2.5-coder:7b"), ("pool", "gpu")))
            assert by_key[vram] == 0.75
            assert by_key[("ygg_host_saturated", (("pool", "gpu"),))] == 1
            assert not [s for s in samples if s.labels.get("pool") == "cloud"]

            # The host's load changes: the record follows (written on change only).
            hosts["vllm"].serve("/metrics", vllm_metrics(1, 0, 0.2))
            hosts["gpu"].serve("/api/ps", ollama_ps(("qwen2.5-coder:7b", 6 * GB, 6 * GB)))
            assert wait_until(
                lambda: (
                    (found := telemetry(status_json(config)))["vllm"]["waiting"] == 0
                    and found["gpu"]["warnings"] == []
                ),
                WAIT_S,
            )
            assert "warning:" not in run_ygg(config, "status").stdout
        assert daemons.stop(daemon) == 0
        log = events(daemons.log_of(daemon))
    assert [e["pool"] for e in log if e["event"] == "host_warning"] == ["gpu"]  # once
    assert [e["pool"] for e in log if e["event"] == "host_telemetry_none"] == ["cloud"]
    assert not [e for e in log if e["level"] in ("error", "critical")]
    # The silent host was asked once, then left alone (SILENT_POLL_S), and never for a chat.
    assert len([r for r in hosts["cloud"].requests if r.path in ("/metrics", "/slots")]) == 2
    # A stopped daemon's readings go with it.
    assert set(telemetry(status_json(config)).values()) == {None}


def test_the_legacy_mode_records_what_its_hosts_say(
    tmp_path: Path, hosts: dict[str, FakeHost]
) -> None:
    config = configure(tmp_path, hosts)
    with DaemonSet(config) as daemons:
        daemon = daemons.start("--legacy")
        assert wait_until(
            lambda: None not in [telemetry(status_json(config))[p] for p in ("gpu", "vllm")],
            WAIT_S,
        )
        check_reported(telemetry(status_json(config)))
        assert daemons.stop(daemon) == 0
        log = events(daemons.log_of(daemon))
    assert not [e for e in log if e["level"] in ("error", "critical")]
    assert set(telemetry(status_json(config)).values()) == {None}


def test_an_adaptive_pool_backs_off_when_its_host_says_requests_wait(tmp_path: Path) -> None:
    """Host telemetry feeds adaptive slots: once the limit has grown, a vLLM host that starts
    reporting requests waiting in it makes the pool back off, with the host's reason."""
    with FakeHost("openai") as vllm:
        vllm.serve("/metrics", vllm_metrics(0, 0, 0.1))
        vllm.first_token_s = vllm.token_gap_s = 0.005
        pools = (
            f'\n[pools.vllm]\nbackend = "openai"\nurl = "{vllm.url}/v1"\nmodel = "m"\n'
            'kinds = ["work"]\nslots = 8\nadaptive = true\nmin_slots = 1\n'
        )
        daemon = "telemetry_seconds = 0.2\npoll_seconds = 1"
        config = write_config(tmp_path, pools, daemon=daemon)
        batch = tmp_path / "tasks.jsonl"
        lines = [json.dumps({"title": f"t{i}", "kind": "work", "prompt": "say a few words"})
                 for i in range(2000)]  # fmt: skip
        batch.write_text("\n".join(lines) + "\n")  # more than it runs meanwhile: it keeps adapting
        assert run_ygg(config, "submit", "--jsonl", str(batch)).returncode == 0
        with DaemonSet(config) as daemons:
            daemon_process = daemons.start()

            def moves() -> list[dict[str, Any]]:
                log = daemons.log_of(daemon_process)
                return [e for e in events(log) if e["event"] == "pool_limit_changed"]

            assert wait_until(lambda: any(m["limit"] >= 2 for m in moves()), 60), moves()
            waiting = iter(range(3, 10_000))

            def host_queues() -> bool:
                """Requests now queue in the host. The report changes at each look (a pool acts
                on a changed reading, once per window, and not while already at its floor).
                Should the pool's own measure take it back to its floor first (a slow
                machine), the host reports no queue until the limit has grown again."""
                moved = moves()
                if moved[-1]["limit"] >= 2:
                    vllm.serve("/metrics", vllm_metrics(2, next(waiting), 0.5))
                else:
                    vllm.serve("/metrics", vllm_metrics(0, 0, 0.1))
                return any(m["reason"].startswith("host:") for m in moved)

            assert wait_until(host_queues, 60), [(m["limit"], m["reason"]) for m in moves()]
            assert daemons.stop(daemon_process) == 0
    backed = [m for m in moves() if m["reason"].startswith("host:")]
    assert backed[0]["limit"] < backed[0]["was"]
    assert "requests waiting in the host" in backed[0]["reason"]
