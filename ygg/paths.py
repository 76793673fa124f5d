"""Paths as text, spelt as pathlib spells them, for the modules every command loads:
`import pathlib` (with urllib.parse behind it) costs a tenth of `ygg submit`'s start-up."""

from __future__ import annotations

import os


def pure(path: str) -> str:
    """`str(pathlib.PurePosixPath(path))`: "a//./b/" -> "a/b", "" -> "." — so that names in
    messages, and the queue's path that identifies it, stay as pathlib made them."""
    if path.startswith("//") and not path.startswith("///"):
        root = "//"  # POSIX leaves two leading slashes to the implementation: pathlib keeps them
    else:
        root = "/" if path.startswith("/") else ""
    return root + "/".join(part for part in path.split("/") if part and part != ".") or "."


def parent(path: str) -> str:
    """`str(pathlib.PurePosixPath(path).parent)`."""
    return pure(os.path.dirname(pure(path)) or ".")
