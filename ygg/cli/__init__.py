"""The `ygg` command: a thin layer over the library. Only this package exits the process.

`ygg.cli.parser` builds the parser and runs a command; each command group is a module with
`register(commands)`, and a command's handler imports what it needs when it runs. This
`__init__` imports nothing, so the console script (`ygg.cli.entry`) can answer `--version`
before argparse is loaded.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ygg.cli.parser import build_parser, command_named, main, run

__all__ = ["build_parser", "command_named", "main", "run"]


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module("ygg.cli.parser"), name)
    raise AttributeError(f"module 'ygg.cli' has no attribute {name!r}")
