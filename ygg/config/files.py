"""Configuration files: discovery, drop-in merging with per-key provenance, and `config set`.

Paths are text here, not pathlib's (ygg/paths.py says why)."""

from __future__ import annotations

import os

from ygg.errors import ConfigError, InvalidInput
from ygg.paths import pure

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    StrPath = str | os.PathLike[str]

SEARCH_PATHS = ("./ygg.toml", "/etc/ygg/ygg.toml")
LOCAL_DROP_IN = "50-local.toml"


class Layers:
    """The merged configuration and, for every dotted key, the file its value came from."""

    def __init__(self, main: str | None = None) -> None:
        self.merged: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.main = main

    def file_of(self, key: str) -> str:
        """The file that set `key` (or the nearest enclosing table), for error messages."""
        parts = key.split(".")
        while parts:
            found = self.sources.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return self.main or "configuration"

    def get(self, key: str) -> tuple[Any, Path | None]:
        from pathlib import Path  # only `ygg config get` asks

        node: Any = self.merged
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise InvalidInput(f"The configuration has no key {key!r}.")
            node = node[part]
        origin = self.sources.get(key) or (self.file_of(key) if self.main else None)
        return node, Path(origin) if origin else None


def find_config_path(explicit: str | None) -> str | None:
    """The main file, resolved (symbolic links followed), or None when there is none."""
    for given, whence in ((explicit, ""), (os.environ.get("YGG_CONFIG"), " (from $YGG_CONFIG)")):
        if given:
            if not os.path.isfile(given):
                raise ConfigError(f"{pure(given)}: no such configuration file{whence}.")
            return os.path.realpath(given)
    for candidate in SEARCH_PATHS:
        if os.path.isfile(candidate):
            return os.path.realpath(candidate)
    return None


def drop_in_dir(main: StrPath) -> str:
    return os.path.join(os.path.dirname(os.fspath(main)), "ygg.d")


def _read_toml(path: str) -> dict[str, Any]:
    import tomllib  # here: a cached configuration is not parsed again (ygg/config/cache.py)

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}.") from None


def _merge(
    into: dict[str, Any],
    data: dict[str, Any],
    path: str,
    sources: dict[str, str],
    prefix: str = "",
) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, path, sources, dotted + ".")
            continue
        into[key] = _copy(value)
        sources.update({k: path for k in [dotted, *_leaf_keys(value, dotted + ".")]})


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value


def _leaf_keys(value: Any, prefix: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    keys: list[str] = []
    for key, sub in value.items():
        keys += [prefix + key, *_leaf_keys(sub, f"{prefix}{key}.")]
    return keys


def drop_ins(main: StrPath) -> list[str]:
    """The drop-in files merged over `main`, in name order."""
    directory = drop_in_dir(main)
    try:
        names = os.listdir(directory)
    except OSError:  # none, not a directory, or unreadable: no drop-ins, as ever
        return []
    return [os.path.join(directory, name) for name in sorted(names) if name.endswith(".toml")]


def read_layers(main: StrPath) -> Layers:
    from ygg.config import cache

    main = os.fspath(main)
    files = [main, *drop_ins(main)]
    key = cache.stamps(files)  # taken before reading: an edit after it misses the cache
    cached = cache.read(main, key) if key else None
    layers = Layers(main=main)
    if cached is not None:
        layers.merged, layers.sources = cached
        return layers
    for path in files:
        _merge(layers.merged, _read_toml(path), path, layers.sources)
    if key:
        cache.write(main, key, layers.merged, layers.sources)
    return layers


def parse_value(text: str) -> Any:
    """A value given on the command line: TOML if it parses (4, true, ["a"]), else a string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_value(main: StrPath, key: str, value: Any) -> str:
    """Writes `key = value` into the local drop-in only, so the main file's comments survive."""
    parts = key.split(".")
    if not all(parts):
        raise InvalidInput(f"{key!r} is not a dotted key such as pools.fenrir-chat.slots.")
    target = os.path.join(drop_in_dir(main), LOCAL_DROP_IN)
    data = _read_toml(target) if os.path.isfile(target) else {}
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InvalidInput(f"{target}: {part} is a value, not a table.")
        node = child
    node[parts[-1]] = value
    import tomli_w  # only `ygg init` and `ygg config set` write TOML

    return _write_atomically(target, tomli_w.dumps(data))


def _write_atomically(target: str, text: str) -> str:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temporary = f"{target}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, target)
    return target


def layers_with(main: StrPath, key: str, value: Any) -> Layers:
    """The configuration as it would be after `set_value`, to validate before writing."""
    layers = read_layers(main)
    layers.sources[key] = os.path.join(drop_in_dir(main), LOCAL_DROP_IN)
    node = layers.merged
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InvalidInput(f"{key!r}: {part} is a value, not a table.")
    node[parts[-1]] = value
    return layers
