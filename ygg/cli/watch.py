"""Watching the queue: `ygg status` (read from the database) and `ygg top` (live)."""

from __future__ import annotations

import argparse
from argparse import Namespace

from ygg.cli.args import Parser, seconds
from ygg.cli.context import Env, echo, emit_json
from ygg.errors import InvalidInput


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    status = commands.add_parser(
        "status",
        help="pools, breakers, tasks by status, why the next task of each kind waits, daemons",
    )
    status.add_argument(
        "--json", dest="as_json", action="store_true", help="print one JSON document"
    )
    status.add_argument(
        "--probe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask each host's health endpoint (default: yes)",
    )
    status.set_defaults(run=_status)

    top = commands.add_parser("top", help="a live view of pools and running tasks; q quits")
    top.add_argument(
        "--interval", metavar="S", type=seconds, default=1.0, help="seconds between refreshes"
    )
    top.set_defaults(run=_top)


def _status(env: Env, args: Namespace) -> None:
    from ygg.ops.status import status_lines, status_report

    report = status_report(env.config(), env.store(), probe=args.probe)
    if args.as_json:
        emit_json(report)
        return
    for line in status_lines(report):
        echo(line)


def _top(env: Env, args: Namespace) -> None:
    from ygg.cli.top import Source, run_live

    if not 0.1 <= args.interval <= 3600:
        raise InvalidInput(f"--interval must be from 0.1 to 3600 seconds, not {args.interval}.")
    config = env.config()
    source = Source(config, env.store, ask_daemon=env.db is None)
    try:
        run_live(source.fetch, args.interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C is the ordinary way out of a live view, not a failure
    finally:
        source.close()
