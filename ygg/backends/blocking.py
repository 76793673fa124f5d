"""The blocking form of every backend, for the legacy thread-per-pool dispatcher.

It builds requests and reads answers with the same code as the async backends
(`protocols`, `command_env`, `sim_outcome`); only the transport differs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import httpx

from ygg.backends.base import MAX_RESPONSE_BYTES, AttemptFailed, Job
from ygg.backends.command import (
    READ_CHUNK_BYTES,
    STDERR_TAIL_BYTES,
    cannot_start,
    command_env,
    exit_failure,
    kill_group,
    spawn_options,
    too_much_output,
)
from ygg.backends.decoding import ACCEPT_ENCODING
from ygg.backends.host_model import host_model
from ygg.backends.http import attempt_timeout, classify, protocol_for
from ygg.backends.protocols import Answer, Request
from ygg.backends.sim import sim_outcome, sim_seconds
from ygg.config import PoolConfig
from ygg.store.model import Outcome

STOP_POLL_S = 0.05  # how soon a cancel or shutdown reaches a running command


class _Output:
    """Reads a command's stdout (capped) and stderr (tail only) on two threads."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.stdout = b""
        self.stderr = b""
        self.overflow = False
        assert process.stdout is not None and process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self, stream: IO[bytes]) -> None:
        chunks, size = [], 0
        while chunk := os.read(stream.fileno(), READ_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                self.overflow = True
                kill_group(self.process.pid)
                return
            chunks.append(chunk)
        self.stdout = b"".join(chunks)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        while chunk := os.read(stream.fileno(), READ_CHUNK_BYTES):
            self.stderr = (self.stderr + chunk)[-STDERR_TAIL_BYTES:]

    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def close(self) -> None:
        """Closes the pipes, once the readers are done (the threads read their fds)."""
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class Interrupted(Exception):
    """The attempt was stopped from outside (cancel, lost lease, shutdown)."""


_CONNECTED = ("connection.connect_tcp.complete", "connection.connect_unix_socket.complete")


class _Line:
    """The connection of one request, so another thread can cut it at once.

    A thread blocked reading a socket wakes when the socket is shut down (not when it is
    closed). httpcore's trace hook hands us the socket as it connects; we keep a duplicate of
    it (our own descriptor: it stays valid however httpcore wraps or closes the original, TLS
    included) and shut that down on `cut`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._cut = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in _CONNECTED:
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return  # not a socket we can cut; the stop flag and the timeouts still hold
        with self._lock:
            self._sock = sock.dup()
            if self._cut:
                _shut(self._sock)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            if self._sock is not None:
                _shut(self._sock)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side: nothing to cut
        sock.shutdown(socket.SHUT_RDWR)


def timed_out(timeout_s: float) -> AttemptFailed:
    return AttemptFailed(f"timed out after {timeout_s:g} s", retryable=True)


class BlockingBackend:
    """One per pool thread; `stop` interrupts the attempt in progress where the backend can."""

    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool
        self.stop = threading.Event()
        self._client: httpx.Client | None = None
        self._line: _Line | None = None  # the HTTP request in flight
        self._line_lock = threading.Lock()
        if pool.backend in ("ollama", "openai"):
            self.protocol = protocol_for(pool)
            self._client = httpx.Client(
                timeout=attempt_timeout(pool.retry.timeout_s),
                follow_redirects=False,
                headers={"accept-encoding": ACCEPT_ENCODING},
                # A fresh connection per request: its socket is what `interrupt` cuts, and
                # httpcore reports it only as it connects. A handshake is nothing next to an
                # LLM's answer.
                limits=httpx.Limits(max_keepalive_connections=0),
                trust_env=False,
            )

    def reset(self) -> None:
        """Forgets the stop of a previous attempt; called before the next one can be stopped."""
        self.stop.clear()

    def interrupt(self) -> None:
        """Stops the attempt in progress, from any thread: a command is killed, an HTTP
        request's connection is shut down at once, whether or not its host has answered."""
        self.stop.set()
        with self._line_lock:
            line = self._line
        if line is not None:
            line.cut()

    def run(self, job: Job, timeout_s: float) -> Outcome:
        if self.pool.backend == "sim":
            return self._sim(job, timeout_s)
        if self.pool.backend == "command":
            return self._command(job, timeout_s)
        return self._http(job, timeout_s)

    def _sim(self, job: Job, timeout_s: float) -> Outcome:
        seconds = sim_seconds(job, self.pool)
        host = host_model(self.pool)
        if host is not None:
            finished = host.serve_blocking(seconds, self.stop, time.monotonic() + timeout_s)
            if self.stop.is_set():
                raise Interrupted
            if not finished:
                raise timed_out(timeout_s)
            return sim_outcome(job)
        if self.stop.wait(min(seconds, timeout_s)):
            raise Interrupted
        if seconds > timeout_s:
            raise timed_out(timeout_s)
        return sim_outcome(job)

    def _command(self, job: Job, timeout_s: float) -> Outcome:
        try:
            process = subprocess.Popen(
                self.pool.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=command_env(job, self.pool),
                **spawn_options(),
            )
        except OSError as exc:
            raise cannot_start(self.pool, exc) from None
        output = _Output(process)
        deadline = time.monotonic() + timeout_s
        try:
            with contextlib.suppress(BrokenPipeError):
                assert process.stdin is not None
                process.stdin.write(job.prompt.encode())
                process.stdin.close()
            self._wait(lambda: process.poll() is not None, deadline, timeout_s)
            # Its children may still hold the pipes open; they get the rest of the timeout.
            self._wait(output.done, deadline, timeout_s)
        except BaseException:
            kill_group(process.pid)
            process.wait()
            output.join()
            raise
        finally:
            output.close()
        if output.overflow:
            raise too_much_output()
        if process.returncode != 0:
            raise exit_failure(process.returncode, output.stderr)
        return Outcome(output.stdout.decode("utf-8", "replace"))

    def _wait(self, finished: Callable[[], bool], deadline: float, timeout_s: float) -> None:
        """Waits, polling the stop flag, so a cancel or shutdown stops the command promptly."""
        while not finished():
            if self.stop.wait(STOP_POLL_S):
                raise Interrupted
            if time.monotonic() > deadline:
                raise timed_out(timeout_s)

    def _http(self, job: Job, timeout_s: float) -> Outcome:
        return self.send(self.protocol.chat(job), timeout_s)

    def send(self, request: Request, timeout_s: float) -> Outcome:
        line = _Line()
        with self._line_lock:
            self._line = line
        try:
            # After the line is known: an interrupt from now on cuts it, one before is seen here.
            if self.stop.is_set():
                raise Interrupted
            return self._exchange(request, timeout_s, line)
        finally:
            with self._line_lock:
                self._line = None
            line.close()

    def _exchange(self, request: Request, timeout_s: float, line: _Line) -> Outcome:
        assert self._client is not None
        started_s = time.monotonic()  # time to first token counts from here
        deadline = started_s + timeout_s
        # Every phase is bounded by this attempt's timeout, so a host that never answers cannot
        # hold the worker past it either.
        phases = attempt_timeout(timeout_s)
        try:
            with self._client.stream(
                request.method,
                request.url,
                headers=request.headers,
                content=request.body,
                timeout=phases,
                extensions={"trace": line.trace},
            ) as response:
                answer = Answer(
                    self.protocol, response.status_code, dict(response.headers), started_s
                )
                for chunk in response.iter_raw():
                    # The total deadline: a host trickling bytes must not hold the slot.
                    now_s = time.monotonic()
                    if now_s > deadline:
                        raise timed_out(timeout_s)
                    if self.stop.is_set():
                        raise Interrupted
                    answer.feed(chunk, now_s)
                return answer.outcome(time.monotonic())
        except httpx.HTTPError as exc:
            if self.stop.is_set():
                raise Interrupted from None  # we cut the connection ourselves
            if isinstance(exc, httpx.TimeoutException) and not isinstance(
                exc, httpx.ConnectTimeout
            ):
                raise timed_out(timeout_s) from None  # as the async mode's asyncio.timeout says
            raise classify(exc, self.pool.host) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
