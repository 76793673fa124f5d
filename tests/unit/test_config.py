"""Configuration loading and validation through `ygg.config.load` on real TOML files."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from ygg.config import Config, load
from ygg.config.examples import example_config
from ygg.errors import EXIT_CONFIG, ConfigError

REPO = Path(__file__).resolve().parents[2]

POOL_KINDS = {
    "surtr-reasoning": (2, ("reasoning", "general")),
    "fenrir-chat": (3, ("text-processing", "summarize", "text-extraction")),
    "skadi-code": (2, ("code-generation", "code-refactor")),
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return load(str(write(tmp_path / "ygg.toml", text)))


# --- the example configuration -----------------------------------------------------------


@pytest.mark.parametrize("demo", [False, True], ids=["ollama", "demo"])
def test_example_config_loads_with_three_pools(tmp_path: Path, demo: bool) -> None:
    config = load_text(tmp_path, example_config(demo=demo))

    assert list(config.pools) == list(POOL_KINDS)
    for name, (slots, kinds) in POOL_KINDS.items():
        pool = config.pools[name]
        assert (pool.slots, pool.kinds) == (slots, kinds)
        assert pool.host == name.split("-")[0]
        assert pool.retry.max_attempts == 3
        assert pool.retry.timeout_s == 600.0
        if demo:
            assert pool.backend == "sim"
            assert pool.url is None
        else:
            assert pool.backend == "ollama"
            assert pool.url == f"http://{pool.host}:11434"
            assert pool.model
    assert config.pools["surtr-reasoning"].kinds == ("reasoning", "general")
    assert "general" in config.kinds_served()
    assert config.daemon.db == str(tmp_path / "ygg.db")
    assert (config.daemon.lease_s, config.daemon.drain_s) == (30.0, 60.0)
    assert config.daemon.on_shutdown == "requeue"
    assert config.daemon.status_listen == "127.0.0.1:9464"
    assert config.path == (tmp_path / "ygg.toml").resolve()


def test_repo_config_is_the_example_byte_for_byte() -> None:
    shipped = REPO / "config" / "ygg.toml"
    assert shipped.read_bytes() == example_config().encode("utf-8")
    assert set(load(str(shipped)).pools) == set(POOL_KINDS)


def test_demo_pools_simulate_different_durations(tmp_path: Path) -> None:
    config = load_text(tmp_path, example_config(demo=True))
    seconds = {name: pool.seconds for name, pool in config.pools.items()}
    assert seconds == {"surtr-reasoning": 2.0, "fenrir-chat": 1.0, "skadi-code": 1.5}


# --- defaults, overrides, paths ----------------------------------------------------------

POOLS = """
[pools.a]
backend = "sim"
kinds = ["general"]
"""


def test_built_in_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, POOLS)
    pool = config.pools["a"]
    assert (pool.slots, pool.host, pool.seconds, pool.fallback) == (1, "localhost", 1.0, ())
    assert (config.defaults.max_attempts, config.defaults.timeout_s) == (3, 600.0)
    assert pool.retry == config.defaults
    assert (config.daemon.lease_s, config.daemon.on_shutdown) == (30.0, "requeue")


def test_defaults_and_per_pool_overrides(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        "[defaults]\nmax_attempts = 5\ntimeout = 120\n"
        + POOLS
        + '\n[pools.b]\nbackend = "sim"\nkinds = ["other"]\nmax_attempts = 1\ntimeout = 2.5\n'
        + '\n[pools.c]\nbackend = "sim"\nkinds = ["third"]\ntimeout = 30\n',
    )
    a, b, c = (config.pools[name].retry for name in "abc")
    assert (config.defaults.max_attempts, config.defaults.timeout_s) == (5, 120.0)
    assert (a.max_attempts, a.timeout_s) == (5, 120.0)
    assert (b.max_attempts, b.timeout_s) == (1, 2.5)
    assert (c.max_attempts, c.timeout_s) == (5, 30.0)


def test_db_is_relative_to_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc" / "ygg"
    write(etc / "ygg.toml", '[daemon]\ndb = "data/queue.db"\n' + POOLS)
    monkeypatch.chdir(tmp_path)
    assert load("etc/ygg/ygg.toml").daemon.db == str(etc.resolve() / "data" / "queue.db")

    absolute = tmp_path / "elsewhere.db"
    write(etc / "ygg.toml", f'[daemon]\ndb = "{absolute}"\n' + POOLS)
    assert load("etc/ygg/ygg.toml").daemon.db == str(absolute)

    url = "postgresql://ygg@db/ygg"
    write(etc / "ygg.toml", f'[daemon]\ndb = "{url}"\n' + POOLS)
    assert load("etc/ygg/ygg.toml").daemon.db == url


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load(required=False).pools == {}
    with pytest.raises(ConfigError, match="No configuration found"):
        load()
    write(tmp_path / "ygg.toml", POOLS)
    assert load().path == (tmp_path / "ygg.toml").resolve()
    other = write(tmp_path / "env" / "other.toml", POOLS.replace("general", "from-env"))
    monkeypatch.setenv("YGG_CONFIG", str(other))
    assert load().pools["a"].kinds == ("from-env",)
    explicit = write(tmp_path / "explicit.toml", POOLS.replace("general", "explicit"))
    assert load(str(explicit)).pools["a"].kinds == ("explicit",)
    monkeypatch.setenv("YGG_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load()


def test_drop_ins_merge_in_name_order_later_wins(tmp_path: Path) -> None:
    main = write(
        tmp_path / "ygg.toml",
        "# a comment that must survive\n[daemon]\nlease_seconds = 10\n"
        + POOLS
        + "slots = 1\nmax_attempts = 2\n",
    )
    drop = tmp_path / "ygg.d"
    write(drop / "20-later.toml", "[pools.a]\nslots = 7\n")
    write(
        drop / "10-earlier.toml",
        "[pools.a]\nslots = 5\nhost = 'gpu1'\n[daemon]\ndrain_seconds = 5\n",
    )
    write(drop / "30-new-pool.toml", '[pools.b]\nbackend = "sim"\nkinds = ["other"]\n')
    write(drop / "99-notes.txt", "this is not TOML and is ignored\n[[[")
    before = main.read_bytes()

    config = load(str(main))

    a = config.pools["a"]
    assert (a.slots, a.host, a.retry.max_attempts) == (7, "gpu1", 2)
    assert (config.daemon.lease_s, config.daemon.drain_s) == (10.0, 5.0)
    assert set(config.pools) == {"a", "b"}
    assert config.layers.get("pools.a.slots") == (7, (drop / "20-later.toml").resolve())
    assert config.layers.get("pools.a.kinds")[1] == main.resolve()
    assert main.read_bytes() == before


# --- configuration errors ----------------------------------------------------------------


class Bad(NamedTuple):
    daemon: str = ""  # lines added to [daemon]
    pool: str = ""  # lines added to [pools.a]
    tail: str = ""  # tables appended to the main file
    main: str | None = None  # the whole main file instead of the template
    dropin: str | None = None  # ygg.d/60-bad.toml; the error must name this file
    key: str | None = None  # the dotted key the message must name
    hint: str | None = None  # the spelling the message must suggest


TEMPLATE = """\
[daemon]
db = "q.db"
{daemon}

[pools.a]
backend = "sim"
kinds = ["general"]
{pool}

[pools.b]
backend = "sim"
kinds = ["other"]

{tail}
"""

BAD = {
    "unknown-section": Bad(tail="[pool]\nx = 1\n", key="pool", hint="pools"),
    "unknown-daemon-key": Bad(
        daemon="lease_second = 30", key="daemon.lease_second", hint="lease_seconds"
    ),
    "unknown-defaults-key": Bad(
        tail="[defaults]\nmax_attempt = 2\n", key="defaults.max_attempt", hint="max_attempts"
    ),
    "unknown-pool-key": Bad(pool="slot = 2", key="pools.a.slot", hint="slots"),
    "slots-zero": Bad(pool="slots = 0", key="pools.a.slots"),
    "slots-string": Bad(pool='slots = "two"', key="pools.a.slots"),
    "slots-bool": Bad(pool="slots = true", key="pools.a.slots"),
    "slots-float": Bad(pool="slots = 1.5", key="pools.a.slots"),
    "lease-negative": Bad(daemon="lease_seconds = -1", key="daemon.lease_seconds"),
    "timeout-zero": Bad(pool="timeout = 0", key="pools.a.timeout"),
    "max-attempts-zero": Bad(tail="[defaults]\nmax_attempts = 0\n", key="defaults.max_attempts"),
    "unknown-backend": Bad(
        tail='[pools.c]\nbackend = "olama"\nkinds = ["c"]\n', key="pools.c.backend"
    ),
    "no-backend": Bad(tail='[pools.c]\nkinds = ["c"]\n', key="pools.c.backend"),
    "ollama-without-url": Bad(
        tail='[pools.c]\nbackend = "ollama"\nmodel = "m"\nkinds = ["c"]\n', key="pools.c.url"
    ),
    "ollama-without-model": Bad(
        tail='[pools.c]\nbackend = "ollama"\nurl = "http://h:11434"\n', key="pools.c.model"
    ),
    "url-without-scheme": Bad(
        tail='[pools.c]\nbackend = "ollama"\nurl = "skadi:11434"\nmodel = "m"\n',
        key="pools.c.url",
    ),
    "url-ftp": Bad(
        tail='[pools.c]\nbackend = "openai"\nurl = "ftp://h/v1"\nmodel = "m"\n', key="pools.c.url"
    ),
    "command-without-argv": Bad(tail='[pools.c]\nbackend = "command"\n', key="pools.c.argv"),
    "argv-string": Bad(
        tail='[pools.c]\nbackend = "command"\nargv = "/bin/run --x"\n', key="pools.c.argv"
    ),
    "kinds-not-a-list": Bad(
        tail='[pools.c]\nbackend = "sim"\nkinds = "general"\n', key="pools.c.kinds"
    ),
    "kinds-empty-string": Bad(
        tail='[pools.c]\nbackend = "sim"\nkinds = [""]\n', key="pools.c.kinds"
    ),
    "fallback-missing-pool": Bad(pool='fallback = ["cloud"]', key="pools.a.fallback"),
    "fallback-itself": Bad(pool='fallback = ["a"]', key="pools.a.fallback"),
    "on-shutdown-invalid": Bad(daemon='on_shutdown = "drop"', key="daemon.on_shutdown"),
    "status-listen-without-port": Bad(
        daemon='status_listen = "127.0.0.1"', key="daemon.status_listen"
    ),
    "status-listen-port-too-big": Bad(
        daemon='status_listen = "127.0.0.1:99999"', key="daemon.status_listen"
    ),
    "lease-nan": Bad(daemon="lease_seconds = nan", key="daemon.lease_seconds"),
    "drain-inf": Bad(daemon="drain_seconds = inf", key="daemon.drain_seconds"),
    "log-format-invalid": Bad(daemon='log_format = "xml"', key="daemon.log_format"),
    "bad-pool-name": Bad(tail='[pools."bad name"]\nbackend = "sim"\n', key="pools.bad name"),
    "pool-not-a-table": Bad(main="[pools]\na = 3\n", key="pools.a"),
    "invalid-toml": Bad(main='[daemon\ndb = "q.db"\n'),
    "pools-not-a-table": Bad(main='pools = 3\n[daemon]\ndb = "q.db"\n', key="pools"),
    "daemon-not-a-table": Bad(main="daemon = 3\n", key="daemon"),
    "dropin-unknown-pool-key": Bad(
        dropin="[pools.a]\nslot = 2\n", key="pools.a.slot", hint="slots"
    ),
    "dropin-unknown-daemon-key": Bad(
        dropin="[daemon]\nlease_second = 3\n", key="daemon.lease_second", hint="lease_seconds"
    ),
    "dropin-slots-zero": Bad(dropin="[pools.a]\nslots = 0\n", key="pools.a.slots"),
    "dropin-unknown-section": Bad(dropin="[deamon]\nx = 1\n", key="deamon", hint="daemon"),
    "dropin-invalid-toml": Bad(dropin="[pools.a\n"),
    "dropin-new-pool-bad-backend": Bad(
        dropin='[pools.c]\nbackend = "gpu"\n', key="pools.c.backend"
    ),
}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_configuration_errors(tmp_path: Path, bad: Bad) -> None:
    main = write(
        tmp_path / "ygg.toml",
        bad.main
        if bad.main is not None
        else TEMPLATE.format(daemon=bad.daemon, pool=bad.pool, tail=bad.tail),
    )
    culprit = main
    if bad.dropin is not None:
        culprit = write(tmp_path / "ygg.d" / "60-bad.toml", bad.dropin)
        write(tmp_path / "ygg.d" / "10-fine.toml", "[pools.a]\nslots = 2\n")

    with pytest.raises(ConfigError) as caught:
        load(str(main))

    error = caught.value
    assert error.exit_code == EXIT_CONFIG == 78
    message = error.message
    assert "\n" not in message.strip()
    assert message.startswith(f"{culprit.resolve()}: "), message
    if bad.key is not None:
        assert bad.key in message, message
    if bad.hint is not None:
        assert f"did you mean {bad.hint!r}" in message, message
    else:
        assert "did you mean" not in message, message


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ygg.toml"
    with pytest.raises(ConfigError) as caught:
        load(str(missing))
    assert caught.value.exit_code == 78
    assert str(missing) in caught.value.message
    assert "no such configuration file" in caught.value.message


def test_a_valid_template_loads(tmp_path: Path) -> None:
    """The error matrix's template is valid, so every failure above is the case's own."""
    config = load_text(tmp_path, TEMPLATE.format(daemon="", pool="", tail=""))
    assert set(config.pools) == {"a", "b"}
