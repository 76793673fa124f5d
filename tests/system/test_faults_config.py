"""A matrix of broken configurations against the real `ygg`: one line on stderr naming the
file and the key (with a likely spelling where there is one), exit 78, no traceback — for
the daemon (`ygg loop`) in every case, and for an ordinary command (`ygg list`) in some."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemons import run_ygg, ygg_env

EXIT_CONFIG = 78
BOTH = ("list", "loop")
GOOD_POOL = '[pools.gpu]\nbackend = "sim"\nslots = 1\nkinds = ["general"]\n'


@dataclass(frozen=True)
class Broken:
    text: str  # the main file, ygg.toml
    fragments: tuple[str, ...]  # each must appear in the message ("{file}": the file's path)
    dropin: str | None = None  # ygg.d/20-local.toml, when the fault is there
    commands: tuple[str, ...] = ("loop",)
    config_arg: str | None = None  # what --config names, if not ygg.toml
    env: tuple[tuple[str, str], ...] = ()


def daemon(extra: str) -> str:
    return f'[daemon]\ndb = "queue.db"\n{extra}\n{GOOD_POOL}'


def pool(extra: str, backend: str = 'backend = "sim"') -> str:
    return f'[pools.gpu]\n{backend}\nslots = 1\nkinds = ["general"]\n{extra}\n'


CASES: dict[str, Broken] = {
    "unknown-daemon-key": Broken(
        daemon("lease_secs = 3"),
        ("{file}", "daemon.lease_secs", "did you mean 'lease_seconds'"),
        commands=BOTH,
    ),
    "unknown-pool-key": Broken(
        pool("slot = 2").replace("slots = 1\n", ""),
        ("{file}", "pools.gpu.slot", "did you mean 'slots'"),
    ),
    "unknown-section": Broken(
        GOOD_POOL + "[pool.extra]\nslots = 1\n", ("{file}", "pool", "did you mean 'pools'")
    ),
    "unknown-defaults-key": Broken(
        "[defaults]\nmax_attempt = 2\n" + GOOD_POOL,
        ("{file}", "defaults.max_attempt", "'max_attempts'"),
    ),
    "slots-wrong-type": Broken(
        pool("").replace("slots = 1", 'slots = "two"'), ("{file}", "pools.gpu.slots")
    ),
    "lease-wrong-type": Broken(daemon('lease_seconds = "30"'), ("{file}", "daemon.lease_seconds")),
    "kinds-not-a-list": Broken(
        pool("").replace('kinds = ["general"]', 'kinds = "general"'), ("{file}", "pools.gpu.kinds")
    ),
    "slots-zero": Broken(
        pool("").replace("slots = 1", "slots = 0"), ("{file}", "pools.gpu.slots"), commands=BOTH
    ),
    "slots-negative": Broken(
        pool("").replace("slots = 1", "slots = -2"), ("{file}", "pools.gpu.slots")
    ),
    "lease-negative": Broken(daemon("lease_seconds = -1"), ("{file}", "daemon.lease_seconds")),
    "unknown-backend": Broken(
        pool("", 'backend = "olama"'), ("{file}", "pools.gpu.backend", "ollama")
    ),
    "missing-backend": Broken(pool("", ""), ("{file}", "pools.gpu.backend")),
    "fallback-names-no-pool": Broken(
        pool('fallback = ["cloud"]'), ("{file}", "pools.gpu.fallback", "cloud")
    ),
    "fallback-names-itself": Broken(pool('fallback = ["gpu"]'), ("{file}", "pools.gpu.fallback")),
    "ollama-without-url": Broken(
        pool('model = "m"', 'backend = "ollama"'), ("{file}", "pools.gpu.url")
    ),
    "ollama-url-not-http": Broken(
        pool('model = "m"\nurl = "ftp://x"', 'backend = "ollama"'), ("{file}", "pools.gpu.url")
    ),
    "command-without-argv": Broken(pool("", 'backend = "command"'), ("{file}", "pools.gpu.argv")),
    "argv-as-shell-string": Broken(
        pool('argv = "run-job --fast"', 'backend = "command"'), ("{file}", "pools.gpu.argv")
    ),
    "bad-on-shutdown": Broken(daemon('on_shutdown = "explode"'), ("{file}", "daemon.on_shutdown")),
    "bad-status-listen": Broken(
        daemon('status_listen = "everywhere"'), ("{file}", "daemon.status_listen")
    ),
    "bad-pool-name": Broken(
        GOOD_POOL.replace("[pools.gpu]", '[pools."gpu box"]'), ("{file}", "gpu box")
    ),
    "toml-syntax": Broken(
        '[daemon\ndb = "queue.db"\n' + GOOD_POOL, ("{file}", "TOML"), commands=BOTH
    ),
    "toml-duplicate-key": Broken(pool("slots = 2"), ("{file}", "TOML")),
    "pools-not-a-table": Broken('pools = "gpu"\n', ("{file}", "pools")),
    "dropin-unknown-key": Broken(
        GOOD_POOL,
        ("20-local.toml", "pools.gpu.slotz", "'slots'"),
        dropin="[pools.gpu]\nslotz = 3\n",
    ),
    "dropin-syntax": Broken(GOOD_POOL, ("20-local.toml", "TOML"), dropin="[pools.gpu\n"),
    "missing-config-file": Broken(
        GOOD_POOL, ("nowhere.toml",), config_arg="nowhere.toml", commands=BOTH
    ),
    "config-is-a-directory": Broken(GOOD_POOL, ("ygg.d",), config_arg="ygg.d", dropin="# empty\n"),
    "missing-api-key": Broken(
        pool(
            'url = "http://127.0.0.1:9"\nmodel = "m"\napi_key_env = "YGG_NO_SUCH_KEY"',
            'backend = "openai"',
        ),
        ("YGG_NO_SUCH_KEY",),
        commands=("loop",),
    ),
}
COMMANDS = {"list": ("list",), "loop": ("loop", "--until-idle")}
Outcome = dict[tuple[str, str], tuple[subprocess.CompletedProcess[str], Path]]


def prepare(root: Path, name: str, case: Broken) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "ygg.toml").write_text(case.text)
    if case.dropin is not None:
        (directory / "ygg.d").mkdir()
        (directory / "ygg.d" / "20-local.toml").write_text(case.dropin)
    return directory


def run_case(root: Path, name: str, command: str) -> subprocess.CompletedProcess[str]:
    case = CASES[name]
    directory = root / name
    config = directory / (case.config_arg or "ygg.toml")
    env = dict(case.env)
    return run_ygg(config, *COMMANDS[command], cwd=directory, env=env, timeout_s=30)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Every case and command, run a few at a time: each is mostly interpreter start-up."""
    root = tmp_path_factory.mktemp("configs")
    assert "YGG_NO_SUCH_KEY" not in ygg_env()
    for name, case in CASES.items():
        prepare(root, name, case)
    jobs = [(n, c) for n, case in CASES.items() for c in case.commands]

    def run(job: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        return run_case(root, *job)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run, jobs))
    return {job: (result, root / job[0]) for job, result in zip(jobs, results, strict=True)}


@pytest.mark.parametrize(
    ("name", "command"), [(n, c) for n, case in CASES.items() for c in case.commands]
)
def test_broken_config_is_one_line_and_exit_78(outcomes: Outcome, name: str, command: str) -> None:
    result, directory = outcomes[(name, command)]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("ygg: "), result.stderr
    assert result.stdout == ""
    for fragment in CASES[name].fragments:
        expected = str(directory / "ygg.toml") if fragment == "{file}" else fragment
        assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"
    assert result.returncode == EXIT_CONFIG, lines[0]
    assert not list(directory.glob("*.db")), "a broken configuration created a queue"
