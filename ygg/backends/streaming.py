"""Reading a streamed answer as it arrives: OpenAI's server-sent events, Ollama's JSON lines.

Both transports (the async client and the legacy blocking one) feed the decoded bytes with the
moment they arrived. A reader notes when the first non-empty piece of content came and when the
last one did, and ends with the Outcome: the text, the host's token counts, the time to the
first token and the generation time. A host that answers one JSON document although a stream
was asked for (a proxy that drops `stream`, an old server) is read whole, without timings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from ygg.backends.base import AttemptFailed
from ygg.store.model import Outcome

STREAM_TYPES = ("text/event-stream", "ndjson")  # SSE (OpenAI), application/x-ndjson (Ollama)


class Stream(Protocol):
    def feed(self, data: bytes, now_s: float) -> None:
        """Takes the next decoded bytes, received at `now_s` (time.monotonic())."""
        ...

    def finish(self, now_s: float) -> Outcome:
        """The outcome once every byte has been fed; AttemptFailed if the answer is unusable."""
        ...


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def invalid_json(host: str) -> AttemptFailed:
    return AttemptFailed(f"{host} answered with invalid JSON", retryable=False)


def error_text(data: Any) -> str:
    """The message of an error body: Ollama's {"error": "..."}, OpenAI's {"error": {...}}."""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if error:
            return str(error)[:500]
    return ""


class _Lines:
    """A stream read line by line; subclasses say what a line means and when it is complete."""

    def __init__(self, host: str, started_s: float) -> None:
        self.host = host
        self.started_s = started_s
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.parts: list[str] = []
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self._pending: list[bytes] = []  # the start of a line whose end has not come yet

    def feed(self, data: bytes, now_s: float) -> None:
        if b"\n" not in data:
            if data:
                self._pending.append(data)
            return
        lines = (b"".join(self._pending) + data).split(b"\n")
        self._pending = [lines.pop()] if lines[-1] else []
        for line in lines:
            self._line(line.rstrip(b"\r").decode("utf-8", "replace"), now_s)

    def finish(self, now_s: float) -> Outcome:
        if self._pending:
            self.feed(b"\n", now_s)  # a last line without its newline
        self._end(now_s)
        first, last = self.first_s, self.last_s
        if first is None or last is None:  # no content at all: nothing to time
            return Outcome("".join(self.parts), self.tokens_in, self.tokens_out)
        return Outcome(
            "".join(self.parts), self.tokens_in, self.tokens_out, first - self.started_s,
            last - first,
        )  # fmt: skip

    def content(self, text: Any, now_s: float) -> None:
        if isinstance(text, str) and text:
            self.parts.append(text)
            if self.first_s is None:
                self.first_s = now_s
            self.last_s = now_s

    def document(self, text: str) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise invalid_json(self.host) from None
        if not isinstance(data, dict):
            raise invalid_json(self.host)
        if "error" in data:  # the host failed after it had said 200
            detail = error_text(data) or "an error"
            raise AttemptFailed(f"{self.host} failed while answering: {detail}", retryable=True)
        return data

    def _line(self, line: str, now_s: float) -> None:
        raise NotImplementedError

    def _end(self, now_s: float) -> None:
        raise NotImplementedError


class OllamaLines(_Lines):
    """/api/chat with `stream: true`: one JSON object a line, the last with `done: true` and
    the counts (`prompt_eval_count`, `eval_count`)."""

    done = False

    def _line(self, line: str, now_s: float) -> None:
        if not line.strip():
            return
        data = self.document(line)
        message = data.get("message")
        if isinstance(message, dict):
            self.content(message.get("content"), now_s)
        if data.get("done") is True:
            self.done = True
            self.tokens_in = integer(data.get("prompt_eval_count"))
            self.tokens_out = integer(data.get("eval_count"))

    def _end(self, now_s: float) -> None:
        if not self.done:
            raise AttemptFailed(f"{self.host} ended its answer before done", retryable=True)


class OpenAIEvents(_Lines):
    """/chat/completions with `stream: true`: server-sent events whose data are chunks
    (`choices[0].delta.content`), the usage in a last chunk (asked for with
    `stream_options.include_usage`), then `data: [DONE]`."""

    done = False
    finished = False  # a choice said why it stopped (finish_reason)
    choices = False
    _data: list[str] | None = None  # the data lines of the event being read

    def _line(self, line: str, now_s: float) -> None:
        if not line:  # a blank line ends an event
            data, self._data = self._data, None
            if data is not None:
                self._event("\n".join(data), now_s)
        elif line.startswith("data:"):
            value = line[5:]
            self._data = [*(self._data or []), value[1:] if value.startswith(" ") else value]
        # comments (":") and the fields event, id and retry say nothing about the answer

    def _event(self, data: str, now_s: float) -> None:
        if data.strip() == "[DONE]":
            self.done = True
            return
        chunk = self.document(data)
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            self.choices = True
            choice = choices[0]
            delta = choice.get("delta") or choice.get("message")
            if isinstance(delta, dict):
                self.content(delta.get("content"), now_s)
            self.finished = self.finished or bool(choice.get("finish_reason"))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.tokens_in = integer(usage.get("prompt_tokens"))
            self.tokens_out = integer(usage.get("completion_tokens"))

    def _end(self, now_s: float) -> None:
        if self._data is not None:  # the last event without its blank line
            self._line("", now_s)
        if not self.choices:
            raise AttemptFailed(f"{self.host} sent a stream without choices", retryable=False)
        if not (self.done or self.finished):
            raise AttemptFailed(f"{self.host} ended its answer before [DONE]", retryable=True)


class Whole:
    """An answer that is not a stream by its content type: one JSON document, read whole.

    If it turns out to be a stream after all (`looks_streamed`: a proxy that dropped the
    content type), it is replayed through the stream reader, its timings lost."""

    def __init__(
        self,
        parse: Callable[[bytes], Outcome],
        looks_streamed: Callable[[bytes], bool],
        stream: Stream,
    ) -> None:
        self._parse = parse
        self._looks_streamed = looks_streamed
        self._stream = stream
        self._chunks: list[bytes] = []

    def feed(self, data: bytes, now_s: float) -> None:
        if data:
            self._chunks.append(data)

    def finish(self, now_s: float) -> Outcome:
        body = b"".join(self._chunks)
        if not self._looks_streamed(body):
            return self._parse(body)
        self._stream.feed(body, now_s)
        outcome = self._stream.finish(now_s)
        return outcome._replace(first_token_s=None, generation_s=None)


def is_stream(content_type: str | None) -> bool:
    content_type = (content_type or "").lower()
    return any(kind in content_type for kind in STREAM_TYPES)


def sse_like(body: bytes) -> bool:
    return body.lstrip().startswith((b"data:", b":", b"event:"))


def json_lines_like(body: bytes) -> bool:
    """More than one JSON document, one a line (a single document is read whole anyway)."""
    lines = [line for line in body.strip().split(b"\n") if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
