"""Request building and response parsing for the HTTP backends, free of any transport.

The async backends and the legacy (blocking) dispatcher both use these, so the two modes send
the same requests and read answers the same way.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any

from ygg.backends.base import MAX_RESPONSE_BYTES, AttemptFailed, Job
from ygg.backends.decoding import BodyReader
from ygg.backends.streaming import (
    OllamaLines,
    OpenAIEvents,
    Stream,
    Whole,
    error_text,
    integer,
    invalid_json,
    is_stream,
    json_lines_like,
    sse_like,
)
from ygg.config import PoolConfig
from ygg.config.generation import KNOWN, ollama_fields, openai_fields, parse
from ygg.errors import InvalidInput
from ygg.store.model import Outcome


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


def _messages(job: Job) -> list[dict[str, str]]:
    messages = []
    if job.params.get("system"):
        messages.append({"role": "system", "content": str(job.params["system"])})
    messages.append({"role": "user", "content": job.prompt or job.title})
    return messages


def _options(pool: PoolConfig, job: Job) -> dict[str, Any]:
    """The pool's generation options, then the task's over them, typed for the pool's backend.
    A value stored before it was typed (or by hand) that is no longer valid fails the attempt
    plainly instead of reaching the host."""
    options = dict(pool.options)
    for name, value in job.params.items():
        if name in KNOWN[pool.backend]:
            try:
                options[name] = parse(pool.backend, name, value)
            except InvalidInput as exc:
                raise AttemptFailed(f"param {name} {exc.message}", retryable=False) from None
    return options


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _decode(body: bytes, host: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid_json(host) from None


def check_status(status: int, headers: dict[str, str], body: bytes, host: str) -> None:
    """Raises AttemptFailed for any answer that is not a 2xx, classified for retrying."""
    if 200 <= status < 300:
        return
    try:
        detail = error_text(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError):
        detail = ""
    message = f"{host} answered HTTP {status}" + (f": {detail}" if detail else "")
    if 300 <= status < 400:
        raise AttemptFailed(message + " (redirects are not followed)", retryable=False)
    retryable = status == 429 or status >= 500
    raise AttemptFailed(
        message, retryable=retryable, retry_after_s=retry_after_s(headers.get("retry-after"))
    )


class Ollama:
    health_path = "/api/version"

    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool

    def chat(self, job: Job) -> Request:
        payload = {
            "model": str(job.params.get("model") or self.pool.model),
            "messages": _messages(job),
            **ollama_fields(_options(self.pool, job)),
            "stream": True,  # the first token is seen when it comes
        }
        return Request(
            "POST",
            f"{self.pool.url}/api/chat",
            {"content-type": "application/json"},
            json.dumps(payload).encode(),
        )

    def parse(self, body: bytes) -> Outcome:
        data = _decode(body, self.pool.host)
        try:
            content = data["message"]["content"]
        except (KeyError, TypeError):
            raise AttemptFailed(
                f"{self.pool.host} sent an answer without message.content", retryable=False
            ) from None
        return Outcome(
            str(content), integer(data.get("prompt_eval_count")), integer(data.get("eval_count"))
        )

    def stream(self, content_type: str | None, started_s: float) -> Stream:
        lines = OllamaLines(self.pool.host, started_s)
        return lines if is_stream(content_type) else Whole(self.parse, json_lines_like, lines)


class OpenAI:
    health_path = "/models"

    def __init__(self, pool: PoolConfig, api_key: str | None) -> None:
        self.pool = pool
        self._api_key = api_key

    def chat(self, job: Job) -> Request:
        payload = {
            "model": str(job.params.get("model") or self.pool.model),
            "messages": _messages(job),
            **openai_fields(_options(self.pool, job)),
            # The first token is seen when it comes; the counts come in a last chunk.
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return Request(
            "POST", f"{self.pool.url}/chat/completions", headers, json.dumps(payload).encode()
        )

    def parse(self, body: bytes) -> Outcome:
        data = _decode(body, self.pool.host)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise AttemptFailed(
                f"{self.pool.host} sent an answer without choices[0].message", retryable=False
            ) from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return Outcome(
            str(content),
            integer(usage.get("prompt_tokens")),
            integer(usage.get("completion_tokens")),
        )

    def stream(self, content_type: str | None, started_s: float) -> Stream:
        events = OpenAIEvents(self.pool.host, started_s)
        return events if is_stream(content_type) else Whole(self.parse, sse_like, events)

    def health_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}


class Answer:
    """One chat answer as it arrives, for either transport: `feed` the raw bytes as received,
    then `outcome`. A 2xx answer is decoded and read as a stream; any other is kept whole
    (capped) and classified by check_status."""

    def __init__(
        self,
        protocol: Ollama | OpenAI,
        status: int,
        headers: dict[str, str],
        started_s: float,
    ) -> None:
        self.status = status
        self.headers = headers
        self.host = protocol.pool.host
        self.ok = 200 <= status < 300
        self._reader = BodyReader(
            headers.get("content-encoding"), self.host, MAX_RESPONSE_BYTES, keep=not self.ok
        )
        self._stream = protocol.stream(headers.get("content-type"), started_s)

    def feed(self, raw: bytes, now_s: float) -> None:
        data = self._reader.feed(raw)
        if self.ok:
            self._stream.feed(data, now_s)

    def outcome(self, now_s: float) -> Outcome:
        if not self.ok:
            check_status(self.status, self.headers, self._reader.body(), self.host)
        self._reader.finish()
        return self._stream.finish(now_s)
