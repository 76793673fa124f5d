"""`reload.plan`: which pools a reload keeps, retires and starts — pure, no dispatcher."""

from __future__ import annotations

from tests.conftest import MakeConfig
from ygg.dispatch.reload import plan

POOLS = """
[pools.a]
backend = "sim"
slots = 1
kinds = ["x"]

[pools.b]
backend = "command"
argv = ["true"]
slots = 2
kinds = ["y"]
"""


def test_an_unchanged_configuration_keeps_every_pool(make_config: MakeConfig) -> None:
    config = make_config(POOLS)
    changes = plan(config.pools, config)
    assert (changes.keep, changes.retire, changes.start) == (dict(config.pools), [], {})


def test_slots_and_kinds_change_in_place(make_config: MakeConfig) -> None:
    old = make_config(POOLS)
    new = make_config(POOLS.replace("slots = 1", "slots = 4").replace('["x"]', '["x", "z"]'))
    changes = plan(old.pools, new)
    assert changes.keep["a"].slots == 4 and changes.keep["a"].kinds == ("x", "z")
    assert (changes.retire, changes.start) == ([], {})


def test_a_changed_host_is_retired_and_started_again(make_config: MakeConfig) -> None:
    old = make_config(POOLS)
    new = make_config(POOLS.replace('argv = ["true"]', 'argv = ["false"]'))
    changes = plan(old.pools, new)
    assert list(changes.keep) == ["a"]
    assert changes.retire == ["b"]
    assert changes.start == {"b": new.pools["b"]}


def test_removed_pools_retire_and_added_pools_start(make_config: MakeConfig) -> None:
    old = make_config(POOLS)
    added = '\n[pools.c]\nbackend = "sim"\nkinds = ["w"]\n'
    new = make_config(POOLS.split("[pools.b]", maxsplit=1)[0] + added)
    changes = plan(old.pools, new)
    assert (list(changes.keep), changes.retire, list(changes.start)) == (["a"], ["b"], ["c"])
