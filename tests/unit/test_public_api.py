"""`ygg`'s public API: every name in __all__ resolves, and `import ygg` loads none of it."""

from __future__ import annotations

import subprocess
import sys

import ygg
from tests.conftest import subprocess_env


def test_every_public_name_resolves() -> None:
    assert set(ygg.__all__) == {"__version__", *ygg._EXPORTS}
    for name in ygg.__all__:
        assert getattr(ygg, name) is not None


def test_importing_ygg_loads_nothing_else() -> None:
    probe = "import sys, ygg; print(sorted(m for m in sys.modules if m.startswith('ygg')))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=subprocess_env(), capture_output=True, text=True
    )
    assert done.stdout.strip() == "['ygg']", done.stderr
