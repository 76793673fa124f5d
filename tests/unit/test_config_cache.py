"""The cache of parsed configuration files (ygg/config/cache.py): used only while every file
it was read from is unchanged, validated on every load, and ignored when damaged."""

from __future__ import annotations

import marshal
import os
import time
from pathlib import Path

import pytest

from ygg.config import cache as config_cache
from ygg.config import load
from ygg.errors import ConfigError

MAIN = """
[daemon]
db = "queue.db"

[pools.a]
backend = "sim"
kinds = ["general"]
slots = 2
"""


def aged(*paths: Path) -> None:
    """Gives files an mtime a minute ago: older than the racy window, so they are cached."""
    past = time.time() - 60
    for path in paths:
        os.utime(path, (past, past))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def main(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "ygg.toml"
    path.parent.mkdir()
    path.write_text(MAIN, encoding="utf-8")
    aged(path)
    return path


def entries(cache_home: Path) -> list[Path]:
    return sorted((cache_home / "ygg").glob("*.marshal")) if (cache_home / "ygg").is_dir() else []


def test_an_unchanged_configuration_is_read_from_the_cache(main: Path, cache_home: Path) -> None:
    first = load(str(main))
    [entry] = entries(cache_home)
    # Proof that the second load comes from the cache: the entry, not the file, says 5 slots.
    fmt, path, key, merged, sources = marshal.loads(entry.read_bytes())
    merged["pools"]["a"]["slots"] = 5
    entry.write_bytes(marshal.dumps((fmt, path, key, merged, sources)))

    second = load(str(main))

    assert first.pools["a"].slots == 2
    assert second.pools["a"].slots == 5
    assert second.path == first.path == main.resolve()
    assert second.layers.get("pools.a.slots") == (5, main.resolve())


def test_a_cached_configuration_is_still_validated(main: Path, cache_home: Path) -> None:
    load(str(main))
    [entry] = entries(cache_home)
    fmt, path, key, merged, sources = marshal.loads(entry.read_bytes())
    merged["pools"]["a"]["slots"] = 0
    entry.write_bytes(marshal.dumps((fmt, path, key, merged, sources)))

    with pytest.raises(ConfigError, match=r"ygg.toml: pools.a.slots must be at least 1"):
        load(str(main))


def edit_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """An edit that leaves size and mtime as they were (only the ctime and content change)."""
    assert len(old) == len(new)
    stat = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_every_change_to_the_files_is_seen(main: Path, cache_home: Path) -> None:
    drop = main.parent / "ygg.d"
    drop.mkdir()
    assert load(str(main)).pools["a"].slots == 2

    later = drop / "20-slots.toml"
    later.write_text("[pools.a]\nslots = 3\n", encoding="utf-8")
    aged(later)
    assert load(str(main)).pools["a"].slots == 3  # a drop-in added

    edit_keeping_size_and_mtime(later, "slots = 3", "slots = 4")
    assert load(str(main)).pools["a"].slots == 4  # a drop-in edited
    aged(later)
    assert load(str(main)).pools["a"].slots == 4

    earlier = drop / "10-host.toml"
    earlier.write_text("[pools.a]\nhost = 'gpu1'\nslots = 9\n", encoding="utf-8")
    aged(earlier)
    config = load(str(main))
    assert (config.pools["a"].host, config.pools["a"].slots) == ("gpu1", 4)  # name order

    later.unlink()
    assert load(str(main)).pools["a"].slots == 9  # a drop-in removed

    edit_keeping_size_and_mtime(main, 'kinds = ["general"]', 'kinds = ["summary"]')
    assert load(str(main)).pools["a"].kinds == ("summary",)  # the main file edited
    assert len(entries(cache_home)) == 1  # one entry per main file, replaced


@pytest.mark.parametrize(
    "damage",
    [b"", b"not marshal data \x00\xff", marshal.dumps((99, "x")), marshal.dumps([1, 2, 3])],
    ids=["empty", "garbage", "other format", "not a tuple"],
)
def test_a_damaged_cache_is_ignored_and_replaced(
    main: Path, cache_home: Path, damage: bytes
) -> None:
    load(str(main))
    [entry] = entries(cache_home)
    entry.write_bytes(damage)

    assert load(str(main)).pools["a"].slots == 2
    assert entry.read_bytes() != damage  # written again from the files


def test_files_changed_within_the_racy_window_are_not_cached(main: Path, cache_home: Path) -> None:
    main.touch()  # just now: a second edit in the same timestamp tick could go unseen

    assert load(str(main)).pools["a"].slots == 2
    assert entries(cache_home) == []


def test_an_unwritable_cache_costs_nothing_but_time(main: Path, cache_home: Path) -> None:
    cache_home.write_text("a file where the cache folder would be", encoding="utf-8")

    assert load(str(main)).pools["a"].slots == 2
    assert load(str(main)).pools["a"].slots == 2


def test_toml_dates_are_not_cached_but_load(main: Path, cache_home: Path) -> None:
    main.write_text(MAIN.replace("[pools.a]", "[pools.a]\nsim_overload = 1979-05-27"), "utf-8")
    aged(main)

    with pytest.raises(ConfigError, match="sim_overload must be a string"):
        load(str(main))
    assert entries(cache_home) == []


def test_the_entry_is_named_by_the_main_file(tmp_path: Path, cache_home: Path) -> None:
    one, two = config_cache._entry_path("/etc/ygg/ygg.toml"), config_cache._entry_path("/b")
    assert one is not None and two is not None
    assert one != two and one == config_cache._entry_path("/etc/ygg/ygg.toml")
    assert Path(one).parent == cache_home / "ygg"


def test_an_entry_is_readable_by_its_user_alone(main: Path, cache_home: Path) -> None:
    load(str(main))
    [entry] = entries(cache_home)
    assert entry.stat().st_mode & 0o777 == 0o600
