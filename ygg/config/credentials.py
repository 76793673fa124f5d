"""Secrets from the environment or from systemd credentials (`LoadCredential=`).

A credential is a file in `$CREDENTIALS_DIRECTORY`, readable only by the service and absent
from `/proc/<pid>/environ`, `systemctl show` and the children the command backend starts —
the better home for an API key. The environment variable wins when both exist, so an
operator can override a credential for one run. Values never reach a log line or a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ygg.errors import ConfigError


def _check_name(name: str) -> None:
    # The name becomes a file name inside the credentials directory: nothing may lead out.
    if not name or "/" in name or ".." in name or "\0" in name:
        raise ConfigError(
            f"{name!r} is not a valid secret name: it must be a plain name such as "
            "YGG_CLOUD_KEY, without '/' or '..'."
        )


def _from_credentials(name: str, directory: str) -> str | None:
    path = Path(directory) / name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"The credential {path} cannot be read: {exc.strerror}.") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"The credential {path} is not UTF-8 text.") from None
    # Files written with `echo` or an editor end in a newline that is not part of the key.
    return text.removesuffix("\n") or None


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret called `name`: the environment variable `name` if set and non-empty, else
    the file `$CREDENTIALS_DIRECTORY/name` (one trailing newline removed), else None.

    Raises ConfigError for a name that could escape the credentials directory, or for a
    credential file that exists but cannot be read."""
    _check_name(name)
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return value
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    return _from_credentials(name, directory)
