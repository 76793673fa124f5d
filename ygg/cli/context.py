"""What every command shares: the global options, and the configuration and store they name,
each opened on first use. A leaf: command modules import it, it imports no command module."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from typing import Any

    from ygg.config import Config
    from ygg.errors import ConfigError, QueueNotFound
    from ygg.store.base import Store


class Env:
    # A plain class, not a dataclass: `import dataclasses` alone costs `ygg --version` a
    # third of its start-up.
    def __init__(self, config_path: str | None = None, db: str | None = None) -> None:
        self.config_path = config_path
        # The queue's name identifies it (to orphan matching, to `ygg top`): it must not
        # depend on the directory a command happens to run in.
        self.db = os.path.abspath(db) if db is not None and "://" not in db else db
        self._config: Config | None = None
        self._stores: list[Store] = []

    def config(self, *, required: bool = True) -> Config:
        from ygg.config import load

        if self._config is None:
            self._config = load(self.config_path, required=required and self.db is None)
        return self._config

    def queue(self) -> str:
        """The `daemon.db` this command works on: --db, else the configuration's."""
        return self.db or self.config(required=self.db is None).daemon.db

    def store(self) -> Store:
        from ygg.errors import QueueNotFound
        from ygg.store import open_store

        try:
            store = open_store(self.queue())
        except QueueNotFound as exc:
            raise (exc if self.db else config_db_error(self.config(), exc)) from None
        self._stores.append(store)
        return store

    def close(self) -> None:
        for store in self._stores:
            store.close()


def config_db_error(config: Config, exc: QueueNotFound) -> ConfigError:
    """A daemon.db from the configuration that names a missing directory: a config error."""
    from ygg.errors import ConfigError

    return ConfigError(f"{config.layers.file_of('daemon.db')}: daemon.db {exc.message}")


def emit_json(data: Any) -> None:
    import json  # only --json needs it

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def echo(text: object = "", *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)
