"""ygg: a dispatcher daemon that keeps a few GPU boxes busy with prioritized LLM jobs.

The library API, for programs that submit and watch tasks without the CLI::

    from ygg import load, open_store, new_task, submit
    config = load()                       # the configuration, found as the CLI finds it
    store = open_store(config.daemon.db)  # the queue (a SQLite file)
    task = submit(store, new_task(config, title="summarise", kind="text", prompt="..."))

Names are imported on first use, so `import ygg` costs nothing the caller does not use.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing's own costs `import ygg` a quarter of Python's start-up

__version__ = "0.1.0"

_EXPORTS = {
    # tasks: build, submit, read, cancel, retry (ygg/api.py)
    "new_task": "ygg.api",
    "submit": "ygg.api",
    "submit_many": "ygg.api",
    "get": "ygg.api",
    "cancel": "ygg.api",
    "retry": "ygg.api",
    # configuration and the queue
    "Config": "ygg.config",
    "load": "ygg.config",
    "open_store": "ygg.store",
    "Store": "ygg.store.base",
    "NewTask": "ygg.store.model",
    "Task": "ygg.store.model",
    "Status": "ygg.store.model",
    # errors: every one ygg raises is a YggError with a one-sentence message
    "YggError": "ygg.errors",
    "ConfigError": "ygg.errors",
    "InvalidInput": "ygg.errors",
    "TaskNotFound": "ygg.errors",
    "StoreError": "ygg.errors",
    "StoreUnavailable": "ygg.errors",
}
__all__ = [  # the same names as _EXPORTS (tests/unit/test_public_api.py holds them equal)
    "Config",
    "ConfigError",
    "InvalidInput",
    "NewTask",
    "Status",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Task",
    "TaskNotFound",
    "YggError",
    "__version__",
    "cancel",
    "get",
    "load",
    "new_task",
    "open_store",
    "retry",
    "submit",
    "submit_many",
]

if TYPE_CHECKING:
    from ygg.api import cancel, get, new_task, retry, submit, submit_many
    from ygg.config import Config, load
    from ygg.errors import (
        ConfigError,
        InvalidInput,
        StoreError,
        StoreUnavailable,
        TaskNotFound,
        YggError,
    )
    from ygg.store import open_store
    from ygg.store.base import Store
    from ygg.store.model import NewTask, Status, Task


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ygg' has no attribute {name!r}")
