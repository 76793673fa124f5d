"""Running the daemon: `ygg loop`, and `ygg reload` for the daemons already running."""

from __future__ import annotations

import argparse
from argparse import Namespace
from typing import TYPE_CHECKING

from ygg.cli.args import Parser
from ygg.cli.context import Env, config_db_error, echo

if TYPE_CHECKING:
    from ygg.config import Config


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    loop = commands.add_parser("loop", help="run the dispatcher")
    mode = loop.add_mutually_exclusive_group()
    mode.add_argument(
        "--async", dest="legacy", action="store_false", help="the asyncio dispatcher (default)"
    )
    mode.add_argument(
        "--legacy", dest="legacy", action="store_true", help="the thread-per-pool rollback mode"
    )
    loop.add_argument(
        "--until-idle", action="store_true", help="exit 0 once nothing is queued or running"
    )
    loop.set_defaults(run=_loop, legacy=False)

    reload = commands.add_parser(
        "reload", help="make the daemons on this queue re-read their configuration"
    )
    reload.set_defaults(run=_reload)


def read_config(env: Env) -> Config:
    """The configuration the daemon runs on (read again on every reload)."""
    from ygg.config import load
    from ygg.errors import ConfigError, QueueNotFound
    from ygg.store import queue_path

    config = load(env.config_path, required=env.db is None)
    if env.db:
        config = config._replace(daemon=config.daemon._replace(db=env.db))
    if not config.pools:
        raise ConfigError(f"{config.path}: no pools are configured; there is nothing to run.")
    try:
        queue_path(config.daemon.db)
    except QueueNotFound as exc:
        raise (exc if env.db else config_db_error(config, exc)) from None
    return config


def _loop(env: Env, args: Namespace) -> None:
    from ygg.logs import configure

    config = read_config(env)
    configure(config.daemon.log_format, level=config.daemon.log_level)
    if args.legacy:
        from ygg.daemon import run_legacy

        run_legacy(config, until_idle=args.until_idle, reload_config=lambda: read_config(env))
        return
    from ygg.daemon import run_daemon

    run_daemon(config, until_idle=args.until_idle, reload_config=lambda: read_config(env))


def _reload(env: Env, args: Namespace) -> None:
    import socket

    from ygg import nudge
    from ygg.errors import YggError

    env.config()  # an invalid configuration is reported here, before any daemon sees it
    daemons = env.store().daemons()
    here = socket.gethostname()
    local = [d for d in daemons if d.hostname == here]
    if not local:
        raise YggError("No daemon on this machine runs on this queue; nothing was reloaded.")
    asked = nudge.send([d.nudge for d in local], nudge.RELOAD)
    elsewhere = len(daemons) - len(local)
    echo(
        f"asked {asked} daemon(s) to reload"
        + (
            f"; {elsewhere} on other machines need `systemctl reload ygg` there"
            if elsewhere
            else ""
        )
    )
