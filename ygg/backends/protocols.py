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

from ygg.backends.base import AttemptFailed, Job
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
        raise AttemptFailed(f"{host} answered with invalid JSON", retryable=False) from None


def _error_text(data: Any) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if error:
            return str(error)[:500]
    return ""


def check_status(status: int, headers: dict[str, str], body: bytes, host: str) -> None:
    """Raises AttemptFailed for any answer that is not a 2xx, classified for retrying."""
    if 200 <= status < 300:
        return
    try:
        detail = _error_text(json.loads(body))
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
            "stream": False,
            **ollama_fields(_options(self.pool, job)),
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
            str(content), _int(data.get("prompt_eval_count")), _int(data.get("eval_count"))
        )


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
            str(content), _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
        )

    def health_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
