"""`ygg.record.Record` builds what `typing.NamedTuple` builds, and `ygg.paths` spells paths as
pathlib does: both stand in for those modules on the CLI's start-up path."""

from __future__ import annotations

import pickle
from pathlib import PurePosixPath
from typing import NamedTuple

import pytest

from ygg.paths import parent, pure
from ygg.record import Record
from ygg.store.model import Outcome, Task


class Typed(NamedTuple):
    """A point."""

    x: int
    y: int = 2
    tags: tuple[str, ...] = ()

    def total(self) -> int:
        return self.x + self.y


class Ours(Record):
    """A point."""

    x: int
    y: int = 2
    tags: tuple[str, ...] = ()

    def total(self) -> int:
        return self.x + self.y


def test_a_record_is_the_namedtuple_typing_would_build() -> None:
    typed, ours = Typed(1), Ours(1)
    assert ours == typed == (1, 2, ())
    assert isinstance(ours, tuple)
    assert Ours._fields == Typed._fields
    assert Ours._field_defaults == Typed._field_defaults
    assert ours.total() == typed.total() == 3
    assert ours._replace(y=5) == (1, 5, ())
    assert repr(ours) == "Ours(x=1, y=2, tags=())"
    assert Ours.__doc__ == Typed.__doc__ == "A point."
    assert (Ours.__module__, Ours.__qualname__) == (__name__, "Ours")
    assert list(Ours.__annotations__) == ["x", "y", "tags"]
    assert pickle.loads(pickle.dumps(ours)) == ours
    with pytest.raises(TypeError):
        Ours()  # type: ignore[call-arg]


def test_a_field_without_a_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default follows"):

        class Bad(Record):
            x: int = 1
            y: int


def test_the_store_types_are_records() -> None:
    assert Task._fields[:3] == ("id", "title", "kind")
    assert Task._field_defaults["prompt"] == ""


@pytest.mark.parametrize(
    "path",
    ["", ".", "./", "a", "/", "//", "///", "///a", "./x.db", "a/./b/", "a//b", "//a/b", "..",
     "../x", "x/..", "/tmp/q/ygg.db", "/a/b/"],
)  # fmt: skip
def test_paths_are_spelt_as_pathlib_spells_them(path: str) -> None:
    assert pure(path) == str(PurePosixPath(path))
    assert parent(path) == str(PurePosixPath(path).parent)


def test_a_storable_outcome_is_passed_on_as_it_is_and_another_is_mended() -> None:
    clean = Outcome("an answer", 12, 34, 0.5, 1.5)
    assert clean.storable() is clean
    mended = Outcome("nul\0 here", -1, 2**64, 0.5, None).storable()
    assert mended == Outcome("nul\ufffd here", None, None, 0.5, None)
