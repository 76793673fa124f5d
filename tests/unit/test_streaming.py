"""Reading streamed answers: SSE (OpenAI) and JSON lines (Ollama), cut anywhere, and the
answers that are not what a stream should be."""

from __future__ import annotations

import json

import pytest

from tests.support.streams import frames
from ygg.backends.base import AttemptFailed
from ygg.backends.streaming import (
    OllamaLines,
    OpenAIEvents,
    Whole,
    is_stream,
    json_lines_like,
    sse_like,
)
from ygg.store.model import Outcome

PAYLOAD = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}


def body(protocol: str, content: str = "héllo big wörld") -> tuple[bytes, list[bytes]]:
    """A whole streamed answer, and its token frames."""
    framed = frames(protocol, PAYLOAD, content, prompt_tokens=6)
    return b"".join(framed.head + framed.tokens + framed.tail), framed.tokens


def feed_timed(reader: OllamaLines | OpenAIEvents, protocol: str) -> Outcome:
    """Feeds head at t=1, each token frame at t=2, 3, ..., the tail at t=10."""
    framed = frames(protocol, PAYLOAD, "one two three", prompt_tokens=6)
    for frame in framed.head:
        reader.feed(frame, 1.0)
    for i, frame in enumerate(framed.tokens):
        reader.feed(frame, 2.0 + i)
    for frame in framed.tail:
        reader.feed(frame, 10.0)
    return reader.finish(10.0)


@pytest.mark.parametrize(
    ("protocol", "reader"), [("ollama", OllamaLines), ("openai", OpenAIEvents)]
)
def test_first_token_and_generation_time(protocol: str, reader: type[OllamaLines]) -> None:
    # started at 0.5; the role chunk (content null) at 1 is not a token; tokens at 2, 3, 4
    outcome = feed_timed(reader("h", 0.5), protocol)
    assert outcome == Outcome("one two three", 6, 3, first_token_s=1.5, generation_s=2.0)


@pytest.mark.parametrize(
    ("protocol", "reader"), [("ollama", OllamaLines), ("openai", OpenAIEvents)]
)
@pytest.mark.parametrize("step", [1, 2, 3, 7, 64])
def test_cut_anywhere_same_answer(protocol: str, reader: type[OllamaLines], step: int) -> None:
    """Chunks may end inside a line or inside a UTF-8 character."""
    whole, _ = body(protocol)
    stream = reader("h", 0.0)
    for at in range(0, len(whole), step):
        stream.feed(whole[at : at + step], 1.0)
    assert stream.finish(1.0)[:3] == ("héllo big wörld", 6, 3)


def test_sse_comments_crlf_and_a_last_event_without_blank_line() -> None:
    chunk = {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}
    stream = OpenAIEvents("h", 0.0)
    stream.feed(b": keep-alive\r\n\r\nevent: message\r\n", 1.0)
    stream.feed(b"data: " + json.dumps(chunk).encode(), 2.0)  # then the connection ends
    assert stream.finish(3.0) == Outcome("hi", None, None, first_token_s=3.0, generation_s=0.0)


def test_sse_without_done_but_finished_is_an_answer_without_counts() -> None:
    """A host that ignores stream_options sends no usage: the counts stay unknown."""
    framed = frames("openai", {"model": "m", "stream": True}, "a b", prompt_tokens=1)
    stream = OpenAIEvents("h", 0.0)
    stream.feed(b"".join(framed.head + framed.tokens + framed.tail[:-1]), 1.0)  # no [DONE]
    assert stream.finish(1.0)[:3] == ("a b", None, None)


@pytest.mark.parametrize(
    ("protocol", "reader"), [("ollama", OllamaLines), ("openai", OpenAIEvents)]
)
def test_an_answer_cut_short_is_worth_retrying(protocol: str, reader: type[OllamaLines]) -> None:
    whole, tokens = body(protocol)
    stream = reader("h", 0.0)
    stream.feed(whole[: whole.index(tokens[-1]) + len(tokens[-1])], 1.0)
    with pytest.raises(AttemptFailed, match="ended its answer before") as info:
        stream.finish(1.0)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("reader", "line"),
    [
        (OllamaLines, b'{"error": "model runner has unexpectedly stopped"}\n'),
        (
            OpenAIEvents,
            b'data: {"error": {"message": "model runner has unexpectedly stopped"}}\n\n',
        ),
    ],
)
def test_an_error_inside_the_stream_fails_the_attempt(
    reader: type[OllamaLines], line: bytes
) -> None:
    stream = reader("h", 0.0)
    with pytest.raises(AttemptFailed, match="h failed while answering: model runner") as info:
        stream.feed(line, 1.0)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (OllamaLines, b"{not json\n"),
        (OpenAIEvents, b"data: {not json\n\n"),
        (OllamaLines, b"[1]\n"),
    ],
)
def test_a_line_that_is_not_a_json_object_is_refused(
    reader: type[OllamaLines], data: bytes
) -> None:
    stream = reader("h", 0.0)
    with pytest.raises(AttemptFailed, match="h answered with invalid JSON") as info:
        stream.feed(data, 1.0)
    assert not info.value.retryable


def test_a_stream_without_choices_is_refused() -> None:
    stream = OpenAIEvents("h", 0.0)
    stream.feed(b"data: {}\n\ndata: [DONE]\n\n", 1.0)
    with pytest.raises(AttemptFailed, match="without choices") as info:
        stream.finish(1.0)
    assert not info.value.retryable


def test_content_types() -> None:
    assert is_stream("text/event-stream; charset=utf-8")
    assert is_stream("application/x-ndjson")
    assert not is_stream("application/json")
    assert not is_stream(None)


def parse_whole(data: bytes) -> Outcome:
    return Outcome(json.loads(data)["text"], 1, 2)


@pytest.mark.parametrize(
    ("reader", "looks_streamed", "protocol"),
    [(OllamaLines, json_lines_like, "ollama"), (OpenAIEvents, sse_like, "openai")],
)
def test_whole_reads_one_document_or_replays_a_stream(
    reader: type[OllamaLines], looks_streamed: object, protocol: str
) -> None:
    """A host that answers one JSON document is read whole; a stream sent under another
    content type is still read, though without timings (they were lost on the way)."""
    assert callable(looks_streamed)
    single = Whole(parse_whole, looks_streamed, reader("h", 0.0))
    single.feed(b'{"text": "at once"}', 5.0)
    assert single.finish(5.0) == Outcome("at once", 1, 2)
    replayed = Whole(parse_whole, looks_streamed, reader("h", 0.0))
    replayed.feed(body(protocol)[0], 5.0)
    assert replayed.finish(5.0) == Outcome("héllo big wörld", 6, 3)
