"""Generation options end to end: typed at submit, merged over the pool's `options`, and sent
to a real test host on 127.0.0.1 in each protocol's shape, by both dispatchers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import MakeConfig
from tests.integration.test_backends import DISPATCHERS, run_until_idle
from tests.support.hosts import FakeHost
from ygg import api
from ygg.config import Config
from ygg.errors import InvalidInput
from ygg.store import open_store


@pytest.fixture(params=["ollama", "openai"])
def host(request: pytest.FixtureRequest) -> Iterator[FakeHost]:
    with FakeHost(request.param) as fake:
        yield fake


def config_for(make_config: MakeConfig, host: FakeHost, options: str) -> Config:
    url = host.url if host.protocol == "ollama" else f"{host.url}/v1"
    return make_config(
        f"""
[pools.gpu]
backend = "{host.protocol}"
url = "{url}"
model = "m"
kinds = ["general"]

[pools.gpu.options]
{options}

[pools.shell]
backend = "command"
argv = ["cat"]
kinds = ["shell"]
""",
        defaults="timeout = 10",
    )


POOL_OPTIONS = {"ollama": "num_ctx = 8192\ntemperature = 0.9", "openai": "temperature = 0.9"}
TASK_PARAMS = {"temperature": "0.2", "max_tokens": "64", "seed": "7", "stop": "###"}
EXPECTED: dict[str, dict[str, Any]] = {
    "ollama": {
        "options": {"num_ctx": 8192, "temperature": 0.2, "num_predict": 64, "seed": 7,
                    "stop": ["###"]},
        "keep_alive": "5m",
    },
    "openai": {"temperature": 0.2, "max_tokens": 64, "seed": 7, "stop": ["###"],
               "response_format": {"type": "json_object"}},
}  # fmt: skip
OWN = {"ollama": {"keep_alive": "5m"}, "openai": {"response_format": "json"}}


@DISPATCHERS
def test_task_options_over_pool_options_reach_the_host(
    make_config: MakeConfig, host: FakeHost, legacy: bool
) -> None:
    config = config_for(make_config, host, POOL_OPTIONS[host.protocol])
    store = open_store(config.daemon.db)
    params = {**TASK_PARAMS, **OWN[host.protocol]}
    task = api.submit(store, api.new_task(config, title="t", kind="general", params=params))
    stored = store.get(task.id).params
    assert stored["temperature"] == 0.2 and stored["max_tokens"] == 64  # numbers stay numbers
    run_until_idle(config, legacy)
    assert store.get(task.id).status == "done"
    [request] = host.chat_requests
    sent = {key: request.body[key] for key in EXPECTED[host.protocol]}
    assert sent == EXPECTED[host.protocol]
    assert request.body["model"] == "m"


def test_an_option_the_pool_does_not_know_is_refused_at_submit(
    make_config: MakeConfig, host: FakeHost
) -> None:
    config = config_for(make_config, host, "")
    other = "response_format" if host.protocol == "ollama" else "num_ctx"
    with pytest.raises(InvalidInput) as refused:
        api.new_task(config, title="t", kind="general", params={other: "1"})
    assert refused.value.message.startswith(
        f"Param {other} is not an option {host.protocol} pools know (max_tokens, "
    )
    with pytest.raises(InvalidInput, match="Param temperature must be a number, not 'hot'"):
        api.new_task(config, title="t", kind="general", params={"temperature": "hot"})
    # A command pool's params are its children's environment: any name, kept as text.
    task = api.new_task(config, title="t", kind="shell", params={"temperature": "0.2"})
    assert task.params == {"temperature": "0.2"}


def test_pool_options_are_checked_when_the_configuration_loads(
    make_config: MakeConfig, host: FakeHost
) -> None:
    from ygg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"pools\.gpu\.options\.temperature must be a number"):
        config_for(make_config, host, 'temperature = "hot"')
