"""The command backend hands its child a clean environment: never the daemon's secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import MakeConfig
from tests.integration.test_backends import DISPATCHERS, run_until_idle, submit
from ygg.store import open_store

PRINT_ENV = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]
SECRETS = {
    "YGG_STATUS_TOKEN": "status-token-secret",
    "YGG_CLOUD_KEY": "api-key-secret",
    "OPENAI_API_KEY": "another-secret",
    "SOME_OTHER_VARIABLE": "not for the job",
}


@DISPATCHERS
def test_children_get_only_the_allow_list_the_pool_env_and_task_variables(
    make_config: MakeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "ygg-status-token").write_text("credential-secret")
    for name, value in {**SECRETS, "CREDENTIALS_DIRECTORY": str(credentials)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    argv = json.dumps(PRINT_ENV)
    config = make_config(
        f'[pools.job]\nbackend = "command"\nargv = {argv}\nslots = 1\nkinds = ["general"]\n'
        'env = { CUDA_VISIBLE_DEVICES = "1", PATH = "/opt/job/bin:/usr/bin:/bin" }\n'
    )
    with open_store(config.daemon.db) as store:
        task = submit(store, config, "print env", params={"model": "m"})
    run_until_idle(config, legacy)
    with open_store(config.daemon.db) as store:
        done = store.get(task.id)
    assert done.status == "done", done.error
    assert done.result is not None
    env = json.loads(done.result)
    ygg_vars = {k for k in env if k.startswith("YGG_")}
    assert ygg_vars == {
        "YGG_TASK_ID",
        "YGG_ATTEMPT",
        "YGG_POOL",
        "YGG_KIND",
        "YGG_PRIORITY",
        "YGG_PARAM_MODEL",
        "YGG_QUEUE",
        "YGG_DAEMON",
    }
    assert set(env) - ygg_vars <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES"}
    assert (env["CUDA_VISIBLE_DEVICES"], env["PATH"]) == ("1", "/opt/job/bin:/usr/bin:/bin")
    assert (env["LANG"], env["LC_ALL"], env["TZ"]) == ("C.UTF-8", "C.UTF-8", "UTC")
    for secret in [*SECRETS.values(), str(credentials), "credential-secret"]:
        assert secret not in done.result


@pytest.mark.parametrize(
    "table",
    ['{ YGG_TASK_ID = "7" }', '{ "1BAD" = "x" }', "{ GOOD = 1 }", '"PATH=/bin"'],
)
def test_a_pool_env_table_is_validated(make_config: MakeConfig, table: str) -> None:
    from ygg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"pools\.job\.env"):
        make_config(
            '[pools.job]\nbackend = "command"\nargv = ["/bin/true"]\nkinds = ["general"]\n'
            f"env = {table}\n"
        )
