"""The `ygg` command: a thin typer app over the library. Only this module exits the process."""

from __future__ import annotations

import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from ygg import __version__
from ygg.cli_import import import_app
from ygg.config import Config, load, validate
from ygg.config_files import layers_with, parse_value, set_value
from ygg.errors import EXIT_USAGE, ConfigError, InvalidInput, YggError
from ygg.examples import example_config
from ygg.store import SQLiteStore, open_store

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="ygg: keeps a few GPU boxes busy with prioritized LLM jobs.",
)
config_app = typer.Typer(no_args_is_help=True, help="Read and change the configuration.")
app.add_typer(config_app, name="config")
app.add_typer(import_app, name="import")


@dataclass
class Env:
    """What the global options say, with the configuration and store opened on first use."""

    config_path: str | None = None
    db: str | None = None
    _config: Config | None = None
    _stores: list[SQLiteStore] = field(default_factory=list)

    def config(self, *, required: bool = True) -> Config:
        if self._config is None:
            self._config = load(self.config_path, required=required and self.db is None)
        return self._config

    def store(self) -> SQLiteStore:
        config = self.config(required=self.db is None)
        store = open_store(self.db or config.daemon.db)
        self._stores.append(store)
        return store

    def close(self) -> None:
        for store in self._stores:
            store.close()


def env(ctx: typer.Context) -> Env:
    obj = ctx.find_root().obj
    assert isinstance(obj, Env)
    return obj


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ygg {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", help="Configuration file.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database, overriding daemon.db.")] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = Env(config_path=config, db=db)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write it.")] = Path("ygg.toml"),
    demo: Annotated[
        bool, typer.Option("--demo", help="Simulated pools: runs on this machine.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write an example configuration."""
    if path.exists() and not force:
        raise InvalidInput(f"{path} already exists; pass --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example_config(demo=demo), encoding="utf-8")
    typer.echo(f"wrote {path}" + (" (simulated pools)" if demo else ""))


@app.command()
def loop(
    ctx: typer.Context,
    use_async: Annotated[
        bool,
        typer.Option(
            "--async/--legacy",
            help="The asyncio dispatcher (default), or the thread-per-pool rollback mode.",
        ),
    ] = True,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit 0 once nothing is queued or running.")
    ] = False,
) -> None:
    """Run the dispatcher."""
    from ygg.daemon import run_daemon
    from ygg.logs import configure

    e = env(ctx)

    def read_config() -> Config:
        config = load(e.config_path, required=e.db is None)
        if e.db:
            config = _with_db(config, e.db)
        if not config.pools:
            raise ConfigError(f"{config.path}: no pools are configured; there is nothing to run.")
        return config

    config = read_config()
    configure(config.daemon.log_format, level=config.daemon.log_level)
    if not use_async:
        from ygg.legacy import run_legacy

        run_legacy(config, until_idle=until_idle, reload_config=read_config)
        return
    run_daemon(config, until_idle=until_idle, reload_config=read_config)


@app.command()
def reload(ctx: typer.Context) -> None:
    """Make the daemons running on this queue re-read their configuration (as SIGHUP does)."""
    from ygg.dispatch import nudge

    env(ctx).config()  # an invalid configuration is reported here, before any daemon sees it
    daemons = env(ctx).store().daemons()
    here = socket.gethostname()
    local = [d for d in daemons if d.hostname == here]
    if not local:
        raise YggError("No daemon on this machine runs on this queue; nothing was reloaded.")
    asked = nudge.send([d.nudge for d in local], nudge.RELOAD)
    elsewhere = len(daemons) - len(local)
    typer.echo(
        f"asked {asked} daemon(s) to reload"
        + (
            f"; {elsewhere} on other machines need `systemctl reload ygg` there"
            if elsewhere
            else ""
        )
    )


def _with_db(config: Config, db: str) -> Config:
    from dataclasses import replace

    return replace(config, daemon=replace(config.daemon, db=db))


@config_app.command("get")
def config_get(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. pools.fenrir-chat.slots.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    source: Annotated[bool, typer.Option("--source", help="Also say which file set it.")] = False,
) -> None:
    """Print a configuration value (merged over the drop-ins)."""
    config = env(ctx).config()
    value, origin = config.layers.get(key)
    if as_json:
        emit_json(value)
    else:
        typer.echo(value if isinstance(value, str) else json.dumps(value))
    if source:
        typer.echo(f"# from {origin}", err=True)


@config_app.command("set")
def config_set(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. pools.fenrir-chat.slots.")],
    value: Annotated[str, typer.Argument(help='A TOML value (4, true, ["a"]) or a string.')],
) -> None:
    """Set a value in ygg.d/50-local.toml (the main file and its comments stay untouched)."""
    config = env(ctx).config()
    if config.path is None:
        raise ConfigError("No configuration file to change; run `ygg init` first.")
    parsed = parse_value(value)
    layers = layers_with(config.path, key, parsed)
    validate(layers.merged, layers, config.path)  # an invalid value is refused before writing
    written = set_value(config.path, key, parsed)
    typer.echo(f"{key} = {json.dumps(parsed)} (in {written}); `ygg reload` applies it")


def _register_task_commands() -> None:
    from ygg import cli_tasks  # noqa: F401, I001  (registers its commands on `app`)
    from ygg import cli_bench  # noqa: F401  (bench and demo, listed after them in --help)
    from ygg.cli_top import top

    app.command("top")(top)


_register_task_commands()


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="ygg", standalone_mode=False)
    except YggError as exc:
        typer.echo(f"ygg: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("ygg: aborted.", err=True)
        sys.exit(130)
    except TyperException as exc:  # usage errors: unknown option, missing argument, bad type
        if exc.format_message():
            typer.echo(f"ygg: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
