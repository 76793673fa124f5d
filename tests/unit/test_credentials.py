"""Secrets from the environment and from systemd's credentials directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ygg.config.credentials import read_secret
from ygg.errors import ConfigError


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    return directory


def test_environment_variable_wins(creds: Path) -> None:
    (creds / "YGG_CLOUD_KEY").write_text("from-file\n")
    env = {"YGG_CLOUD_KEY": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    assert read_secret("YGG_CLOUD_KEY", env) == "from-env"


def test_credential_file_when_the_variable_is_unset_or_empty(creds: Path) -> None:
    (creds / "YGG_CLOUD_KEY").write_text("sk-123\n")
    assert read_secret("YGG_CLOUD_KEY", {"CREDENTIALS_DIRECTORY": str(creds)}) == "sk-123"
    env = {"YGG_CLOUD_KEY": "", "CREDENTIALS_DIRECTORY": str(creds)}
    assert read_secret("YGG_CLOUD_KEY", env) == "sk-123"


def test_only_one_trailing_newline_is_stripped(creds: Path) -> None:
    (creds / "a").write_text("line one\nline two\n\n")
    (creds / "b").write_bytes(b"no-newline")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert read_secret("a", env) == "line one\nline two\n"
    assert read_secret("b", env) == "no-newline"


def test_missing_everywhere_is_none(creds: Path) -> None:
    assert read_secret("YGG_CLOUD_KEY", {}) is None
    assert read_secret("YGG_CLOUD_KEY", {"CREDENTIALS_DIRECTORY": str(creds)}) is None
    (creds / "EMPTY").write_text("\n")
    assert read_secret("EMPTY", {"CREDENTIALS_DIRECTORY": str(creds)}) is None


def test_reads_the_real_environment_by_default(
    monkeypatch: pytest.MonkeyPatch, creds: Path
) -> None:
    (creds / "YGG_TEST_SECRET").write_text("from-file")
    monkeypatch.delenv("YGG_TEST_SECRET", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_secret("YGG_TEST_SECRET") == "from-file"
    monkeypatch.setenv("YGG_TEST_SECRET", "from-env")
    assert read_secret("YGG_TEST_SECRET") == "from-env"


@pytest.mark.parametrize("name", ["../etc/shadow", "sub/key", "..", "a..b", "", "nul\0byte"])
def test_names_that_could_leave_the_directory_are_refused(name: str, creds: Path) -> None:
    (creds.parent / "shadow").write_text("outside")
    with pytest.raises(ConfigError, match="not a valid secret name"):
        read_secret(name, {"CREDENTIALS_DIRECTORY": str(creds)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_credential_is_a_config_error(creds: Path) -> None:
    secret = creds / "KEY"
    secret.write_text("sk-secret-value")
    secret.chmod(0)
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        read_secret("KEY", {"CREDENTIALS_DIRECTORY": str(creds)})
    assert "sk-secret-value" not in str(caught.value)


def test_a_credential_that_is_a_directory_is_a_config_error(creds: Path) -> None:
    (creds / "KEY").mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        read_secret("KEY", {"CREDENTIALS_DIRECTORY": str(creds)})


def test_non_utf8_credential_is_a_config_error_without_the_bytes(creds: Path) -> None:
    (creds / "KEY").write_bytes(b"\xff\xfehunter2")
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        read_secret("KEY", {"CREDENTIALS_DIRECTORY": str(creds)})
    assert "hunter2" not in str(caught.value)


def test_the_value_is_never_logged(creds: Path) -> None:
    (creds / "KEY").write_text("sk-do-not-log")
    with capture_logs() as events:
        assert read_secret("KEY", {"CREDENTIALS_DIRECTORY": str(creds)}) == "sk-do-not-log"
    assert "sk-do-not-log" not in repr(events)
