"""The task store: one domain-level interface (`Store`), engines behind it opened by URL.

`open_store("queue.db")` (or `sqlite:///queue.db`) opens SQLite; an engine's module is
imported only when a URL names it, so a command pays for one engine only.
"""

from __future__ import annotations

import importlib

from ygg.errors import StoreError
from ygg.store.model import FINISHED, STATUSES, Claim, NewTask, Outcome, Status, Task

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    from ygg.store.base import Closeable, Store

# URL scheme -> "module:opener"; a path without a scheme is a SQLite file.
ENGINES = {
    "sqlite": "ygg.store.sqlite.store:open_sqlite",
    "postgresql": "ygg.store.postgres.store:open_postgres",
    "postgres": "ygg.store.postgres.store:open_postgres",
}


def scheme_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and scheme.isalpha() else "sqlite"


def queue_path(url: str) -> str:
    """What names the queue on this machine: a SQLite file's path (its directory must exist),
    or for a database server the URL itself. Checked before a daemon starts."""
    if scheme_of(url) != "sqlite":
        return url
    from ygg.store.sqlite.db import db_path

    return db_path(url)


def listen_for_hints(
    url: str, on_payload: Callable[[str], None], on_connected: Callable[[], object]
) -> Closeable | None:
    """Starts receiving the store's wake-up hints from every machine on the queue (PostgreSQL:
    LISTEN on a connection of its own); None where an engine has none (SQLite: one machine,
    whose nudge datagrams already reach every daemon). `on_payload` gets each hint's text
    (a nudge, ygg/nudge.py) on the listener's thread; `on_connected` runs after every
    (re)connect, when hints may have been missed."""
    if scheme_of(url) == "sqlite":
        return None
    from ygg.store.postgres.listen import NotifyListener

    return NotifyListener(url, on_payload, on_connected).start()


def open_store(
    url: str,
    *,
    synchronous: str = "full",
    busy_timeout_s: float = 30.0,
    clock: str | None = None,
) -> Store:
    """Opens (creating and migrating if needed) the store that `daemon.db` names.

    `clock` says whose clock times are on: "caller" (the `now_us` each operation is given)
    or "database" (the server's; PostgreSQL's default, so that machines whose clocks differ
    agree on every lease). None: the engine's default."""
    scheme = scheme_of(url)
    if scheme not in ENGINES:
        known = ", ".join(f"{name}://" for name in ENGINES)
        raise StoreError(f"{url}: no store engine for {scheme}:// (known: {known}, or a path).")
    module, _, opener = ENGINES[scheme].partition(":")
    open_engine = getattr(importlib.import_module(module), opener)
    options = {} if clock is None else {"clock": clock}
    store: Store = open_engine(
        url, synchronous=synchronous, busy_timeout_s=busy_timeout_s, **options
    )
    return store


__all__ = [
    "FINISHED",
    "STATUSES",
    "Claim",
    "NewTask",
    "Outcome",
    "Status",
    "Store",
    "Task",
    "open_store",
]


def __getattr__(name: str) -> object:  # `Store` for annotations, without importing typing aids
    if name == "Store":
        from ygg.store.base import Store

        return Store
    raise AttributeError(name)
