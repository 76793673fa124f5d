"""The configuration: immutable NamedTuples (cheap to define: every `ygg submit` loads them),
one source of defaults (their fields), validated once in `load()`.

TOML keys follow the contract (`lease_seconds`, `timeout`); attribute names carry their units.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from ygg.config.files import Layers, find_config_path, read_layers
from ygg.errors import ConfigError

BACKENDS = ("ollama", "openai", "command", "sim")
LOG_LEVELS = ("debug", "info", "warning", "error")
POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DaemonConfig(NamedTuple):
    db: str = "ygg.db"
    lease_s: float = 30.0
    drain_s: float = 60.0
    on_shutdown: str = "requeue"
    status_listen: str = "127.0.0.1:9464"  # "" serves no status endpoint
    log_format: str = "auto"  # auto: JSON unless writing to a terminal
    log_level: str = "info"  # debug adds one event per task started and finished
    synchronous: str = "normal"  # the daemon's SQLite durability for claims and outcomes
    poll_s: float = 2.0  # safety poll behind the nudges; never the way work is normally found
    status_log_s: float = 10.0  # how often the pool_status event is logged
    telemetry_s: float = 5.0  # how often each HTTP pool's host is asked for its load; 0: never


class RetryPolicy(NamedTuple):
    max_attempts: int = 3
    timeout_s: float = 600.0
    backoff_s: float = 1.0  # first retry waits up to this long (full jitter), doubling each time
    backoff_max_s: float = 60.0


class PoolConfig(NamedTuple):
    name: str
    backend: str
    kinds: tuple[str, ...]
    retry: RetryPolicy
    slots: int = 1
    host: str = "localhost"
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    argv: tuple[str, ...] = ()
    seconds: float = 1.0
    fallback: tuple[str, ...] = ()
    breaker_failures: int = 5  # consecutive host failures that open the circuit breaker
    breaker_cooldown_s: float = 30.0  # open this long before the health probe is tried
    env: tuple[tuple[str, str], ...] = ()  # extra environment for the command backend
    options: tuple[tuple[str, Any], ...] = ()  # generation options for every request (HTTP)
    # The sim backend's host model (ygg/backends/host_model.py); 0: none.
    sim_knee: int = 0  # concurrent requests past which each one slows (batched decoding)
    sim_capacity: int = 0  # past this many, the host answers 503 or spills to the CPU
    sim_overload: str = "slow"  # "503" | "slow"

    def same_host_as(self, other: PoolConfig) -> bool:
        """Whether a reload can keep this pool's backend (and its connections) for `other`."""
        keep = ("backend", "host", "url", "model", "api_key_env", "argv", "seconds", "env",
                "sim_knee", "sim_capacity", "sim_overload")  # fmt: skip
        return all(getattr(self, key) == getattr(other, key) for key in keep)


class Config(NamedTuple):
    daemon: DaemonConfig
    defaults: RetryPolicy
    pools: dict[str, PoolConfig]
    path: Path | None  # main file, None when running without one
    layers: Layers

    def kinds_served(self) -> list[str]:
        return sorted({kind for pool in self.pools.values() for kind in pool.kinds})

    def pools_for_kind(self, kind: str) -> list[PoolConfig]:
        return [pool for pool in self.pools.values() if kind in pool.kinds]


class _Table:
    """Reads one TOML table, remembering which keys were used so the rest can be reported."""

    def __init__(self, data: Any, where: str, layers: Layers) -> None:
        self.where, self.layers = where, layers
        if not isinstance(data, dict):
            self.fail(where, "must be a table")
        self.data: dict[str, Any] = data

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(f"{self.layers.file_of(key)}: {key} {problem}.")

    def _get(self, key: str, kinds: tuple[type, ...], what: str) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, kinds):
            self.fail(f"{self.where}.{key}", f"must be {what}, not {value!r}")
        return value

    def number(self, key: str, default: float, *, zero_ok: bool = False) -> float:
        value = self._get(key, (int, float), "a number")
        if value is None:
            return default
        if value < 0 or (value == 0 and not zero_ok) or not math.isfinite(value):
            bound = "at least 0" if zero_ok else "greater than 0"
            self.fail(f"{self.where}.{key}", f"must be {bound}, not {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 1) -> int:
        value = self._get(key, (int,), "a whole number")
        if value is None:
            return default
        if value < minimum:
            self.fail(f"{self.where}.{key}", f"must be at least {minimum}, not {value!r}")
        return int(value)

    def text(
        self,
        key: str,
        default: str | None = None,
        choices: tuple[str, ...] = (),
        *,
        empty_ok: bool = False,
    ) -> Any:
        value = self._get(key, (str,), "a string")
        if value is None:
            return default
        if choices and value not in choices:
            self.fail(f"{self.where}.{key}", f"must be one of {', '.join(choices)}, not {value!r}")
        if not value.strip() and not empty_ok:
            self.fail(f"{self.where}.{key}", "must not be empty")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, (list,), "a list of strings")
        if value is None:
            return ()
        if not all(isinstance(item, str) and item.strip() for item in value):
            self.fail(f"{self.where}.{key}", f"must be a list of non-empty strings, not {value!r}")
        return tuple(value)

    def env_table(self, key: str) -> tuple[tuple[str, str], ...]:
        """A table of environment variables: NAME = "value", names not starting with YGG_."""
        value = self._get(key, (dict,), 'a table of NAME = "value"')
        if value is None:
            return ()
        for name, text in value.items():
            where = f"{self.where}.{key}.{name}"
            if not ENV_NAME.match(name) or name.upper().startswith("YGG_"):
                self.fail(where, "must be a variable name (letters, digits, _) not starting YGG_")
            if not isinstance(text, str) or "\0" in text:
                self.fail(where, f"must be a string, not {text!r}")
        return tuple(sorted(value.items()))

    def options_table(self, key: str, backend: str) -> tuple[tuple[str, Any], ...]:
        """Generation options (ygg.config.generation), typed as the backend takes them."""
        value = self._get(key, (dict,), "a table of option = value")
        if not value:
            return ()
        from ygg.config.generation import KNOWN, parse
        from ygg.errors import InvalidInput

        if backend not in KNOWN:
            self.fail(f"{self.where}.{key}", "is only for ollama and openai pools")
        parsed = {}
        for name, option in value.items():
            try:
                parsed[name] = parse(backend, name, option)
            except InvalidInput as exc:
                self.fail(f"{self.where}.{key}.{name}", exc.message)
        return tuple(sorted(parsed.items()))

    def done(self, known: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in known:
                guess = close_match(key, known)
                hint = f" (did you mean {guess[0]!r}?)" if guess else ""
                self.fail(f"{self.where}.{key}", f"is not a known setting{hint}")


def close_match(word: str, known: tuple[str, ...]) -> list[str]:
    import difflib  # only a misspelt key needs it

    return difflib.get_close_matches(word, known, n=1)


_TOP = ("daemon", "defaults", "pools")
_DAEMON = (
    "db",
    "lease_seconds",
    "drain_seconds",
    "on_shutdown",
    "status_listen",
    "log_format",
    "log_level",
    "synchronous",
    "poll_seconds",
    "status_log_seconds",
    "telemetry_seconds",
)
_RETRY = ("max_attempts", "timeout", "backoff_seconds", "backoff_max_seconds")
_POOL = (
    "host",
    "backend",
    "url",
    "model",
    "api_key_env",
    "argv",
    "seconds",
    "slots",
    "kinds",
    "fallback",
    "breaker_failures",
    "breaker_cooldown_seconds",
    "env",
    "options",
    "sim_knee",
    "sim_capacity",
    "sim_overload",
    *_RETRY,
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _daemon(table: _Table, base_dir: Path | None) -> DaemonConfig:
    d = DaemonConfig()
    db = table.text("db", d.db)
    if base_dir is not None and "://" not in db and not Path(db).is_absolute():
        db = str(base_dir / db)
    listen = table.text("status_listen", d.status_listen, empty_ok=True)
    if listen and (
        not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", listen) or int(listen.rsplit(":", 1)[1]) > 65535
    ):
        table.fail("daemon.status_listen", f"must be HOST:PORT, not {listen!r}")
    config = DaemonConfig(
        db=db,
        lease_s=table.number("lease_seconds", d.lease_s),
        drain_s=table.number("drain_seconds", d.drain_s, zero_ok=True),
        on_shutdown=table.text("on_shutdown", d.on_shutdown, ("requeue", "block")),
        status_listen=listen,
        log_format=table.text("log_format", d.log_format, ("auto", "console", "json")),
        log_level=table.text("log_level", d.log_level, LOG_LEVELS),
        synchronous=table.text("synchronous", d.synchronous, ("normal", "full")),
        poll_s=table.number("poll_seconds", d.poll_s),
        status_log_s=table.number("status_log_seconds", d.status_log_s),
        telemetry_s=table.number("telemetry_seconds", d.telemetry_s, zero_ok=True),
    )
    table.done(_DAEMON)
    return config


def _retry(table: _Table, base: RetryPolicy) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=table.integer("max_attempts", base.max_attempts),
        timeout_s=table.number("timeout", base.timeout_s),
        backoff_s=table.number("backoff_seconds", base.backoff_s, zero_ok=True),
        backoff_max_s=table.number("backoff_max_seconds", base.backoff_max_s, zero_ok=True),
    )


def _http_host(url: str) -> str | None:
    """The host of an http(s) URL, else None."""
    from urllib.parse import urlsplit  # only HTTP pools have a url

    parts = urlsplit(url)
    return parts.hostname if parts.scheme in ("http", "https") else None


def _pool(name: str, table: _Table, defaults: RetryPolicy) -> PoolConfig:
    where = table.where
    if not POOL_NAME.match(name):
        table.fail(where, "is not a valid pool name (letters, digits, '-', '_', '.')")
    backend = table.text("backend", None, BACKENDS)
    if backend is None:
        table.fail(f"{where}.backend", f"is required (one of {', '.join(BACKENDS)})")
    url, model = table.text("url"), table.text("model")
    host = _http_host(url) if url else None
    if backend in ("ollama", "openai"):
        if url is None or model is None:
            table.fail(f"{where}.{'url' if url is None else 'model'}", f"is required for {backend}")
        if host is None:
            table.fail(f"{where}.url", f"must be an http:// or https:// URL, not {url!r}")
    argv = table.strings("argv")
    if backend == "command" and not argv:
        table.fail(f"{where}.argv", "is required for the command backend (a list, no shell)")
    default = PoolConfig._field_defaults
    pool = PoolConfig(
        name=name,
        backend=backend,
        slots=table.integer("slots", default["slots"]),
        kinds=table.strings("kinds"),
        retry=_retry(table, defaults),
        host=table.text("host", host or default["host"]),
        url=url.rstrip("/") if url else None,
        model=model,
        api_key_env=table.text("api_key_env"),
        argv=argv,
        seconds=table.number("seconds", default["seconds"], zero_ok=True),
        fallback=table.strings("fallback"),
        breaker_failures=table.integer("breaker_failures", default["breaker_failures"]),
        breaker_cooldown_s=table.number("breaker_cooldown_seconds", default["breaker_cooldown_s"]),
        env=table.env_table("env"),
        options=table.options_table("options", backend),
        sim_knee=table.integer("sim_knee", default["sim_knee"], minimum=0),
        sim_capacity=table.integer("sim_capacity", default["sim_capacity"], minimum=0),
        sim_overload=table.text("sim_overload", default["sim_overload"], ("503", "slow")),
    )
    table.done(_POOL)
    return pool


def validate(data: dict[str, Any], layers: Layers, path: Path | None) -> Config:
    """Turns merged TOML into a Config, or raises ConfigError naming the file and key."""
    base_dir = path.parent if path else None
    daemon = _daemon(_Table(data.get("daemon", {}), "daemon", layers), base_dir)
    defaults_table = _Table(data.get("defaults", {}), "defaults", layers)
    defaults = _retry(defaults_table, RetryPolicy())
    defaults_table.done(_RETRY)
    pools_table = _Table(data.get("pools", {}), "pools", layers)
    pools = {
        name: _pool(name, _Table(raw, f"pools.{name}", layers), defaults)
        for name, raw in pools_table.data.items()
    }
    for pool in pools.values():
        for other in pool.fallback:
            if other not in pools or other == pool.name:
                pools_table.fail(f"pools.{pool.name}.fallback", f"names no other pool: {other!r}")
    for key in data:
        if key not in _TOP:
            guess = close_match(key, _TOP)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise ConfigError(f"{layers.file_of(key)}: [{key}] is not a known section{hint}.")
    return Config(daemon=daemon, defaults=defaults, pools=pools, path=path, layers=layers)


def load(explicit: str | None = None, *, required: bool = True) -> Config:
    """Finds, reads, merges and validates the configuration (see the contract for the order)."""
    path = find_config_path(explicit)
    if path is None:
        if required:
            raise ConfigError(
                "No configuration found (tried --config, $YGG_CONFIG, ./ygg.toml, "
                "/etc/ygg/ygg.toml); run `ygg init` to write one."
            )
        return Config(DaemonConfig(), RetryPolicy(), pools={}, path=None, layers=Layers())
    layers = read_layers(path)
    return validate(layers.merged, layers, path)
