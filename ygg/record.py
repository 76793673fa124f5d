"""`Record`: `typing.NamedTuple` without importing `typing` at run time.

`import typing` costs a third of Python's own start-up, and every `ygg submit` defines the
configuration's and the store's value types. Type checkers see `typing.NamedTuple` itself; at
run time a class body becomes the same `collections.namedtuple` typing would build — fields
from the annotations, defaults from the assigned values, methods and docstring kept:

    class Point(Record):
        x: int
        y: int = 0

The fields are read from the class body's annotations, so a module defining Records uses
`from __future__ import annotations` (as ygg's all do): it keeps them there on every Python.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    _SPECIAL = frozenset({"__module__", "__annotations__"})

    class _RecordMeta(type):
        def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, object]):
            if not bases:  # Record itself
                return super().__new__(mcs, name, bases, namespace)
            annotations = namespace.get("__annotations__", {})
            defaults = [field for field in annotations if field in namespace]
            if defaults != list(annotations)[len(annotations) - len(defaults) :]:
                raise TypeError(f"{name}: a field without a default follows one with a default")
            record = collections.namedtuple(
                name,
                list(annotations),
                defaults=[namespace[field] for field in defaults],
                module=str(namespace["__module__"]),
            )
            record.__annotations__ = dict(annotations)
            for key, value in namespace.items():
                if key not in _SPECIAL and key not in annotations:
                    setattr(record, key, value)
            return record

    class Record(metaclass=_RecordMeta):
        """Subclass it as `typing.NamedTuple` (see the module's docstring)."""


__all__ = ["Record"]
