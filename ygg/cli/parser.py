"""The `ygg` command's parser and runner. Only this package exits the process.

The parent composes: each command group is a module with `register(commands)`, imported here
and importing nothing heavy itself; a command's handler imports what it needs when it runs, so
`ygg submit` never loads asyncio, httpx, the daemon or the bench.
"""

from __future__ import annotations

import importlib
import os
import sys

from ygg import __version__
from ygg.cli.args import Parser
from ygg.cli.context import Env
from ygg.errors import YggError

COMMAND_GROUPS = {
    "ygg.cli.configure": ("init", "config", "migrate"),
    "ygg.cli.tasks": ("submit", "list", "show", "cancel", "retry"),
    "ygg.cli.watch": ("status", "top"),
    "ygg.cli.daemon": ("loop", "reload"),
    "ygg.cli.imports": ("import",),
    "ygg.cli.bench": ("bench", "demo"),
}
_GROUP_OF = {command: group for group, names in COMMAND_GROUPS.items() for command in names}
_TAKES_VALUE = ("--config", "--db")


def command_named(argv: list[str]) -> str | None:
    """The command `argv` names, if it names one before any option other than ours."""
    tokens = iter(argv)
    for token in tokens:
        if token in _TAKES_VALUE:
            next(tokens, None)
        elif not token.startswith("-"):
            return token
        elif not token.startswith(tuple(f"{option}=" for option in _TAKES_VALUE)):
            return None  # --help, --version, a typo: argparse needs every command
    return None


def build_parser(argv: list[str] | None = None) -> Parser:
    """The parser; given `argv`, with only the command group it names (most of start-up)."""
    parser = Parser(prog="ygg", description="Keeps a few GPU boxes busy with prioritized LLM jobs.")
    parser.add_argument("--config", metavar="PATH", help="the configuration file")
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        help="the queue, overriding daemon.db (a SQLite file or a postgresql:// URL)",
    )
    parser.add_argument("--version", action="version", version=f"ygg {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=Parser
    )
    named = command_named(argv) if argv else None
    for module in _groups_for(argv):
        group = importlib.import_module(module)
        # A group may build one command's parser alone (register_one): the commands called
        # in loops build only their own.
        if named in COMMAND_GROUPS[module] and hasattr(group, "register_one"):
            group.register_one(commands, named)
        else:
            group.register(commands)
    return parser


def _groups_for(argv: list[str] | None) -> list[str]:
    if argv is None:
        return list(COMMAND_GROUPS)
    if argv[:1] == ["--version"]:
        return []  # argparse prints the version before it looks for a command
    named = _GROUP_OF.get(command_named(argv) or "")
    return [named] if named else list(COMMAND_GROUPS)


def run(argv: list[str] | None = None) -> int:
    """Runs one command; returns the exit status (the contract's: 0, 1, 2, 65, 78)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    if not argv:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
        env = Env(config_path=args.config, db=args.db)
        try:
            args.run(env, args)
        finally:
            env.close()
    except YggError as exc:
        print(f"ygg: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ygg list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))
