"""Configuration commands: `ygg init`, `ygg config get|set`, `ygg migrate`."""

from __future__ import annotations

import argparse
import json
from argparse import Namespace
from pathlib import Path

from ygg.cli.args import Parser
from ygg.cli.context import Env, echo, emit_json


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    init = commands.add_parser("init", help="write an example configuration")
    init.add_argument(
        "path", metavar="PATH", type=Path, nargs="?", default=Path("ygg.toml"),
        help="where to write it (default ./ygg.toml)",
    )  # fmt: skip
    init.add_argument("--demo", action="store_true", help="simulated pools: runs on this machine")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(run=_init)

    config = commands.add_parser("config", help="read and change the configuration")
    actions = config.add_subparsers(
        title="actions", metavar="ACTION", required=True, parser_class=Parser
    )
    get = actions.add_parser("get", help="print a value (merged over the drop-ins)")
    get.add_argument("key", metavar="KEY", help="A dotted key, e.g. pools.fenrir-chat.slots.")
    get.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    get.add_argument("--source", action="store_true", help="also say which file set it")
    get.set_defaults(run=_get)
    put = actions.add_parser("set", help="set a value in ygg.d/50-local.toml")
    put.add_argument("key", metavar="KEY", help="A dotted key, e.g. pools.fenrir-chat.slots.")
    put.add_argument("value", metavar="VALUE", help='A TOML value (4, true, ["a"]) or a string.')
    put.set_defaults(run=_set)

    migrate = commands.add_parser(
        "migrate", help="create or upgrade the queue's schema; print its version"
    )
    migrate.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    migrate.set_defaults(run=_migrate)


def _migrate(env: Env, args: Namespace) -> None:
    store = env.store()  # opening a store creates or upgrades its schema
    store.check()
    version = store.schema_version()
    queue = env.queue()
    if "://" in queue and not queue.startswith("sqlite"):
        from ygg.store.postgres.db import describe

        queue = describe(queue)  # never print a password given in the URL
    if args.as_json:
        emit_json({"queue": queue, "schema_version": version})
    else:
        echo(f"{queue}: schema version {version}")


def _init(env: Env, args: Namespace) -> None:
    from ygg.config.examples import example_config
    from ygg.errors import InvalidInput

    path: Path = args.path
    if path.exists() and not args.force:
        raise InvalidInput(f"{path} already exists; pass --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example_config(demo=args.demo), encoding="utf-8")
    echo(f"wrote {path}" + (" (simulated pools)" if args.demo else ""))


def _get(env: Env, args: Namespace) -> None:
    value, origin = env.config().layers.get(args.key)
    if args.as_json:
        emit_json(value)
    else:
        echo(value if isinstance(value, str) else json.dumps(value))
    if args.source:
        echo(f"# from {origin}", err=True)


def _set(env: Env, args: Namespace) -> None:
    """The main file and its comments stay untouched; an invalid value is refused first."""
    from ygg.config import validate
    from ygg.config.files import layers_with, parse_value, set_value
    from ygg.errors import ConfigError

    config = env.config()
    if config.path is None:
        raise ConfigError("No configuration file to change; run `ygg init` first.")
    parsed = parse_value(args.value)
    layers = layers_with(config.path, args.key, parsed)
    validate(layers.merged, layers, config.path)
    written = set_value(config.path, args.key, parsed)
    echo(f"{args.key} = {json.dumps(parsed)} (in {written}); `ygg reload` applies it")
