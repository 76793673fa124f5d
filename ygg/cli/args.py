"""argparse, made to speak ygg: usage errors are one sentence (exit 2), values parse with clear
messages. argparse because it is in the standard library and imports in a few milliseconds;
typer and click each cost more than Python's own start-up, and people call `ygg submit` in
loops (docs/ARCHITECTURE.md has the figures)."""

from __future__ import annotations

import os
import re

from ygg.cli.plain_argparse import argparse
from ygg.errors import InvalidInput

TYPE_CHECKING = False  # not typing's: `import typing` costs every command start-up
if TYPE_CHECKING:
    from typing import Any, NoReturn

# Compiled on first use (re caches them): only a command line with a mistake needs them.
_REQUIRED = r"^the following arguments are required: (.+)$"
_CHOICE = r"^argument (\S+): invalid choice: (.+?) \(choose from (.+)\)$"


class UsageError(InvalidInput):
    """The command line is not one ygg understands."""


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, but reading the terminal width itself: argparse builds one for
    every add_argument and would `import shutil` for the width (a tenth of `ygg submit`)."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
        except (ValueError, OSError):
            columns = 80
        super().__init__(prog, width=columns - 2)


class Parser(argparse.ArgumentParser):
    """Raises UsageError instead of printing usage and exiting: only ygg.cli.main exits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        missing = re.match(_REQUIRED, message)
        if missing:
            names = missing[1]
            helps = [
                a.help.rstrip(".").lower()
                for a in self._actions
                if a.help and str(a.metavar or a.dest).upper() in names.split(", ")
            ]
            why = f" ({'; '.join(helps)})" if helps else ""
            message = f"`{self.prog}` needs {names}{why}"
        elif choice := re.match(_CHOICE, message):
            what = "command" if choice[1] == "COMMAND" else choice[1]
            message = f"unknown {what} {choice[2]}; choose from {choice[3]}"
        elif message.startswith("argument "):
            message = message.removeprefix("argument ").replace(": ", " ", 1)
        raise UsageError(f"{message}; see `{self.prog} --help`.")


def whole(text: str) -> int:
    """A whole number (range checks belong to the operation, which knows its bounds)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
