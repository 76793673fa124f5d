"""argparse with its messages taken as they are: English, untranslated.

argparse hands every message to gettext, ygg's messages are English, and Parser.error
(ygg/cli/args.py) reads argparse's English ones. The lookups cost: each reads the locale
settings again (the first imports `locale`), a third of the time `ygg submit` spends on its
parser, and `import gettext` compiles a large regex, 3% more of its start-up. So argparse is
imported with a stand-in for gettext that returns each message unchanged (what gettext does
for the C locale, whose catalogues Python does not ship); any later `import gettext` gets the
real module.
"""

from __future__ import annotations

import sys


def _import_argparse_without_gettext() -> None:
    if "argparse" in sys.modules or "gettext" in sys.modules:
        return  # already imported by someone else: only the lookups are turned off, below
    stand_in = type(sys)("gettext")
    stand_in.__dict__.update(gettext=str, ngettext=_ngettext)
    sys.modules["gettext"] = stand_in
    try:
        __import__("argparse")
    finally:
        del sys.modules["gettext"]


def _ngettext(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


_import_argparse_without_gettext()

import argparse  # noqa: E402 (after the stand-in: this is the module it built)

argparse._ = str  # type: ignore[attr-defined]

__all__ = ["argparse"]
