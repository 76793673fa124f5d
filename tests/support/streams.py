"""Streamed answers as the test hosts send them, framed as real hosts frame them.

Ollama (/api/chat, `stream: true`): one JSON object a line (application/x-ndjson), a token per
line, then a last line with `done: true` and the counts. OpenAI (/chat/completions,
`stream: true`): server-sent events (text/event-stream), first a chunk with the role and
`"content": null` (as llama.cpp's server sends it), a chunk per token, a chunk with the
finish_reason, the usage chunk when `stream_options.include_usage` asks for it, then
`data: [DONE]`.
"""

from __future__ import annotations

import datetime
import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.encodings import WBITS, Encoding

CONTENT_TYPES = {"ollama": "application/x-ndjson", "openai": "text/event-stream"}
_TOKEN = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Frames:
    head: list[bytes]  # sent at once, before any token
    tokens: list[bytes]  # one a token, paced by the host's delays
    tail: list[bytes]  # sent after the last token


def tokens(content: str) -> list[str]:
    """`content` cut into word tokens, each with the space before it: joined, the content."""
    return _TOKEN.findall(content)


def frames(protocol: str, payload: dict[str, Any], content: str, prompt_tokens: int) -> Frames:
    model = str(payload.get("model", ""))
    if protocol == "ollama":
        return _ollama(model, content, prompt_tokens)
    options = payload.get("stream_options")
    usage = isinstance(options, dict) and options.get("include_usage") is True
    return _openai(model, content, prompt_tokens, usage)


def _ollama(model: str, content: str, prompt_tokens: int) -> Frames:
    def line(data: dict[str, Any]) -> bytes:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        return json.dumps({"model": model, "created_at": now, **data}).encode() + b"\n"

    words = tokens(content)
    done = line(
        {
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": prompt_tokens,
            "eval_count": len(words),
        }
    )
    pieces = [
        line({"message": {"role": "assistant", "content": word}, "done": False}) for word in words
    ]
    return Frames([], pieces, [done])


def _openai(model: str, content: str, prompt_tokens: int, usage: bool) -> Frames:
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data = {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish}]

    words = tokens(content)
    head = [event(choice({"role": "assistant", "content": None}))]
    tail = [event(choice({}, "stop"))]
    if usage:
        counts = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        tail.append(event([], usage=counts))
    tail.append(b"data: [DONE]\n\n")
    return Frames(head, [event(choice({"content": word})) for word in words], tail)


def compressor(encoding: Encoding) -> Callable[[bytes, bool], bytes]:
    """Compresses a stream frame by frame, each flushed so the client can decode it at once."""
    squeeze = zlib.compressobj(6, zlib.DEFLATED, WBITS[encoding])

    def frame(data: bytes, last: bool) -> bytes:
        return squeeze.compress(data) + squeeze.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    return frame
