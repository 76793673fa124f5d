"""What streaming costs ygg (docs/PERFORMANCE.md, "Streaming answers").

    python scripts/stream_bench.py [--tokens 500] [--answers 200]

1. Reading: CPU time per token to read one streamed answer fed frame by frame (OpenAI SSE,
   Ollama JSON lines), against reading the same answer as one JSON document.
2. End to end: answers per second through the async backend from a streaming test host on
   127.0.0.1 (no delays), one at a time, against the same host answering whole JSON.
A measurement, not a test; compare the ratios, the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.hosts import FakeHost, Step
from tests.support.streams import frames
from ygg.backends import Job, make_backend
from ygg.backends.protocols import Ollama, OpenAI
from ygg.config import load

PAYLOAD = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}


def pool_for(directory: Path, protocol: str, url: str):  # type: ignore[no-untyped-def]
    path = directory / f"{protocol}.toml"
    path.write_text(
        f'[daemon]\ndb = "q.db"\n[pools.p]\nbackend = "{protocol}"\nurl = "{url}"\n'
        f'model = "m"\nkinds = ["k"]\n'
    )
    return load(str(path)).pools["p"]


def reading(protocol: str, tokens: int, rounds: int, directory: Path) -> tuple[float, float]:
    """Microseconds per token: streamed frame by frame, and whole."""
    content = " ".join(f"w{i}" for i in range(tokens))
    framed = frames(protocol, PAYLOAD, content, prompt_tokens=10)
    pieces = framed.head + framed.tokens + framed.tail
    pool = pool_for(directory, protocol, "http://127.0.0.1:1")
    proto = Ollama(pool) if protocol == "ollama" else OpenAI(pool, None)
    ctype = "application/x-ndjson" if protocol == "ollama" else "text/event-stream"
    if protocol == "ollama":
        whole = {"message": {"content": content}, "done": True, "eval_count": tokens}
    else:
        whole = {"choices": [{"message": {"content": content}}], "usage": {}}
    body = json.dumps(whole).encode()
    began = time.perf_counter()
    for _ in range(rounds):
        stream = proto.stream(ctype, 0.0)
        for piece in pieces:
            stream.feed(piece, time.monotonic())
        stream.finish(time.monotonic())
    streamed_us = (time.perf_counter() - began) / rounds / tokens * 1e6
    began = time.perf_counter()
    for _ in range(rounds):
        stream = proto.stream("application/json", 0.0)
        stream.feed(body, 0.0)
        stream.finish(0.0)
    whole_us = (time.perf_counter() - began) / rounds / tokens * 1e6
    return streamed_us, whole_us


def end_to_end(protocol: str, tokens: int, answers: int, directory: Path, stream: bool) -> float:
    """Answers per second, one at a time."""
    with FakeHost(protocol) as host:  # type: ignore[arg-type]
        host.default = Step(stream=stream)
        pool = pool_for(directory, protocol, host.url)
        prompt = " ".join(f"w{i}" for i in range(tokens - 1))  # the echo adds one token

        async def main() -> float:
            backend = make_backend(pool)
            try:
                began = time.perf_counter()
                for i in range(answers):
                    await backend.run(Job(i, 1, "k", 2, "t", prompt))
                return answers / (time.perf_counter() - began)
            finally:
                await backend.aclose()

        return uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--answers", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for protocol in ("openai", "ollama"):
            streamed_us, whole_us = reading(protocol, args.tokens, 50, directory)
            print(
                f"{protocol} reading: {streamed_us:.2f} us/token streamed, {whole_us:.3f} us/token "
                f"whole ({streamed_us / whole_us:.0f}x)"
            )
            fast = end_to_end(protocol, args.tokens, args.answers, directory, stream=False)
            slow = end_to_end(protocol, args.tokens, args.answers, directory, stream=True)
            print(
                f"{protocol} end to end, {args.tokens} tokens: {slow:.0f} answers/s streamed, "
                f"{fast:.0f} whole (ratio {slow / fast:.2f})"
            )


if __name__ == "__main__":
    main()
