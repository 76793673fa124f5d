"""`ygg bench adaptive`: adaptive slots against every fixed slot count on simulated hosts, or
(`--llm-server URL`) against fixed 1, 2 and 4 on a real OpenAI-compatible server."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from ygg.cli.args import Parser, seconds, whole
from ygg.cli.context import Env, echo, emit_json
from ygg.errors import InvalidInput

if TYPE_CHECKING:
    from ygg.bench.adaptive import HostShape

DEFAULT_SCALE = 0.03  # 1 simulated second = 30 ms (see docs/PERFORMANCE.md for why not 10)
FIXED_S = 60.0  # simulated seconds each fixed setting runs
ADAPTIVE_S = 300.0  # and adaptive slots, whose first minute (convergence) counts
LLM_FIXED = (1, 2, 4)


def add_arguments(bench: Parser) -> None:
    group = bench.add_argument_group("ygg bench adaptive")
    group.add_argument(
        "--models", metavar="NAMES",
        help="adaptive: host models to run, comma-separated (default: all)",
    )  # fmt: skip
    group.add_argument(
        "--ceiling", metavar="N", type=whole, default=None,
        help="adaptive: the adaptive pool's slots, and the largest fixed setting tried (16)",
    )  # fmt: skip
    group.add_argument(
        "--duration", metavar="S", type=seconds, default=None,
        help=f"adaptive: simulated seconds per fixed run ({FIXED_S:g}; adaptive runs 5 times "
        "as long); with --llm-server, real seconds per run (60)",
    )  # fmt: skip
    group.add_argument(
        "--llm-server", metavar="URL",
        help="adaptive: run against this OpenAI-compatible server (its /v1 URL) instead",
    )  # fmt: skip


def wants_adaptive(args: Namespace) -> bool:
    names: list[str] = args.names
    if "adaptive" not in names:
        for flag in ("models", "ceiling", "duration", "llm_server"):
            if getattr(args, flag) is not None:
                option = "--" + flag.replace("_", "-")
                raise InvalidInput(f"{option} is only for `ygg bench adaptive`.")
        return False
    if names != ["adaptive"]:
        raise InvalidInput("`ygg bench adaptive` runs alone; name no other scenario with it.")
    return True


def run(env: Env, args: Namespace, svg: Path | None) -> None:
    from ygg.bench.suite import check_scale

    scale = DEFAULT_SCALE if args.scale is None else check_scale(args.scale)
    ceiling = 16 if args.ceiling is None else args.ceiling
    if not 1 <= ceiling <= 64:
        raise InvalidInput(f"--ceiling must be from 1 to 64, not {ceiling}.")
    if args.duration is not None and args.duration <= 0:
        raise InvalidInput(f"--duration must be a positive number of seconds, not {args.duration}.")
    if args.llm_server is not None:
        _run_llm_server(args, args.llm_server, ceiling)
        return
    _run_sim(args, scale, ceiling, svg)


def _progress(message: str) -> None:
    echo(f"  {message}", err=True)


def _models(text: str | None) -> list[HostShape]:
    from ygg.bench.adaptive import MODELS

    if text is None:
        return list(MODELS)
    known = {m.name: m for m in MODELS}
    chosen = []
    for name in dict.fromkeys(n.strip() for n in text.split(",")):
        if name not in known:
            raise InvalidInput(f"Unknown host model {name!r}; the models are: {', '.join(known)}.")
        chosen.append(known[name])
    return chosen


def _run_sim(args: Namespace, scale: float, ceiling: int, svg: Path | None) -> None:
    from ygg.bench.adaptive import run_model
    from ygg.bench.adaptive_report import document, svg_limits, text_report, verdict

    fixed_s = FIXED_S if args.duration is None else args.duration
    adaptive_s = ADAPTIVE_S if args.duration is None else 5 * args.duration
    verdicts = []
    for model in _models(args.models):
        _progress(f"{model.name} ({model.summary}): fixed 1..{ceiling}, then adaptive ...")
        result = run_model(model, scale, fixed_s, adaptive_s, ceiling, _progress)
        verdicts.append(verdict(result))
    note = (
        f"Sim backend with a host model; 1 simulated second = {scale * 1000:g} ms. Each fixed "
        f"setting runs {fixed_s:g} s, adaptive slots (1 to {ceiling}) {adaptive_s:g} s from "
        "min_slots = 1, convergence included. Times in simulated seconds; latency is each "
        "task's last attempt, start to finish. Best fixed: the highest throughput."
    )
    if svg is not None:
        svg.write_text(svg_limits(verdicts, note[: note.index(" Each")], ceiling), "utf-8")
    if args.as_json:
        emit_json(document(verdicts, scale))
    else:
        echo(text_report(verdicts, note))
    if svg is not None:
        echo(f"limits drawn in {svg}", err=args.as_json)


def _run_llm_server(args: Namespace, url: str, ceiling: int) -> None:
    from ygg.bench.llm_server import llm_report, run_llm_server

    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"--llm-server must be an http:// URL (its /v1 base), not {url!r}.")
    duration_s = 60.0 if args.duration is None else args.duration
    runs = run_llm_server(url.rstrip("/"), LLM_FIXED, min(ceiling, 8), duration_s, _progress)
    if args.as_json:
        emit_json({"url": url, "runs": [r._asdict() for r in runs]})
    else:
        echo(llm_report(runs, url, duration_s))
