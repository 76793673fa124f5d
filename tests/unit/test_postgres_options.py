"""How the PostgreSQL engine connects: the password's sources, libpq's own settings first, and
the database named in messages without a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from ygg.errors import StoreError
from ygg.store.postgres.db import PASSWORD_CREDENTIAL, connect_options, describe

URL = "postgresql://ygg@db.example:5433/queue"


def test_the_password_comes_from_the_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / PASSWORD_CREDENTIAL).write_text("s3cret\n")
    options = connect_options(URL, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert options["password"] == "s3cret"
    assert options["autocommit"] is True


def test_pgpassword_and_a_password_in_the_url_win_over_the_credential(tmp_path: Path) -> None:
    (tmp_path / PASSWORD_CREDENTIAL).write_text("from-credential")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert "password" not in connect_options(URL, {**env, "PGPASSWORD": "x"})
    assert "password" not in connect_options("postgresql://ygg:pw@db/queue", env)
    assert "password" not in connect_options(URL, {})  # nothing to add: ~/.pgpass is libpq's


def test_libpq_settings_in_the_url_or_environment_are_kept() -> None:
    assert connect_options(URL, {})["application_name"] == "ygg"
    assert connect_options(URL, {})["connect_timeout"] == 10
    named = URL + "?application_name=mine&connect_timeout=3"
    assert "application_name" not in connect_options(named, {})
    assert "connect_timeout" not in connect_options(named, {})
    assert "connect_timeout" not in connect_options(URL, {"PGCONNECT_TIMEOUT": "2"})


def test_messages_name_the_database_without_its_password() -> None:
    assert describe("postgresql://ygg:s3cret@db.example:5433/queue") == (
        "postgresql://ygg@db.example:5433/queue"
    )
    assert describe("postgres://db/q") == "postgresql://db/q"
    with pytest.raises(StoreError, match="Not a valid PostgreSQL URL"):
        describe("postgresql://db/q?nonsense_option=1")
