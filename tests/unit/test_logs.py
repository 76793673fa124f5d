"""Log output: control characters never reach a terminal raw; JSON lines stay one per event."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from ygg.logs import configure


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """configure() binds the captured stderr; later tests must not write to it once closed."""
    yield
    structlog.reset_defaults()


def test_console_escapes_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    configure("console")
    structlog.get_logger("t").warning("task_failed", error="boom\x1b[2J\r\nFAKE line\x07")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\r" not in err
    assert err.count("\n") == 1  # one line: a newline in a value cannot forge another event
    assert "FAKE line" in err


def test_console_escapes_exception_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure("console")
    try:
        raise RuntimeError("host said \x1b]0;pwned\x07")
    except RuntimeError:
        structlog.get_logger("t").exception("backend_crashed")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "host said \\x1b]0;pwned\\x07" in err


def test_json_lines_stay_one_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    structlog.get_logger("t").warning("task_failed", error="a\nb\x1b")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["error"] == "a\nb\x1b"
