"""The README's first command: the seed's six ready tasks on simulated hosts, end to end.

Runs the real `ygg` CLI in a temporary directory: writes a demo configuration (the original
deployment's three pools on the sim backend), submits the six tasks of the seed scenario,
runs the dispatcher until the queue is idle, and lists the outcome.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

SIX = [  # (title, kind, priority, simulated seconds)
    ("Code generation (complex model)", "code-generation", 0, 1.5),
    ("Text summarization", "summarize", 0, 1.0),
    ("Reasoning analysis", "reasoning", 1, 2.0),
    ("Text extraction", "text-extraction", 2, 1.0),
    ("Code refactor", "code-refactor", 2, 1.5),
    ("General task", "general", 3, 1.0),
]


def ygg(*args: str, cwd: str) -> None:
    print("$ ygg " + " ".join(args), flush=True)
    env = {k: v for k, v in os.environ.items() if k != "YGG_CONFIG"}
    subprocess.run([sys.executable, "-m", "ygg", *args], cwd=cwd, env=env, check=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ygg-quickstart-") as cwd:
        ygg("init", "--demo", cwd=cwd)
        for title, kind, priority, seconds in SIX:
            ygg(
                "submit",
                title,
                "--kind",
                kind,
                "-p",
                str(priority),
                "--param",
                f"seconds={seconds}",
                cwd=cwd,
            )
        ygg("status", cwd=cwd)
        ygg("--config", "ygg.toml", "loop", "--until-idle", cwd=cwd)
        ygg("list", cwd=cwd)


if __name__ == "__main__":
    main()
