"""BodyReader: decoding gzip and deflate in bounded steps, the cap on the decoded size."""

from __future__ import annotations

import pytest

from tests.support.encodings import Encoding, compress, header_value, zeros_gzip
from ygg.backends.base import AttemptFailed
from ygg.backends.decoding import DECODE_STEP_BYTES, BodyReader

TEXT = b'{"message": {"content": "' + b"word " * 50_000 + b'"}}'


def read(body: bytes, coding: str | None, limit: int = 1 << 30, chunk: int = 1000) -> bytes:
    reader = BodyReader(coding, "h", limit)
    for start in range(0, len(body), chunk):
        reader.feed(body[start : start + chunk])
    return reader.body()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
@pytest.mark.parametrize("chunk", [1, 7, 65_536])
def test_decodes_in_any_chunking(encoding: Encoding, chunk: int) -> None:
    assert read(compress(TEXT, encoding), header_value(encoding), chunk=chunk) == TEXT


def test_identity_and_absent_encoding_pass_through() -> None:
    assert read(TEXT, None) == TEXT
    assert read(TEXT, "identity") == TEXT
    assert read(compress(TEXT, "gzip"), " GZIP ") == TEXT  # as the header may spell it


def test_output_pending_in_zlib_after_a_full_step_is_not_lost() -> None:
    body = bytes(DECODE_STEP_BYTES * 3)  # exact multiples of the step, from tiny input
    assert read(compress(body, "gzip"), "gzip", chunk=1 << 20) == body


@pytest.mark.parametrize("coding", [None, "gzip"])
def test_the_cap_is_on_the_decoded_size(coding: str | None) -> None:
    body = compress(TEXT, "gzip") if coding else TEXT
    assert read(body, coding, limit=len(TEXT)) == TEXT
    with pytest.raises(AttemptFailed, match=f"sent more than {len(TEXT) - 1} bytes") as info:
        read(body, coding, limit=len(TEXT) - 1)
    assert not info.value.retryable
    assert ("once decoded (gzip)" in info.value.message) is bool(coding)


def test_a_bomb_stops_at_the_cap() -> None:
    with pytest.raises(AttemptFailed, match="more than 1000000 bytes once decoded"):
        read(zeros_gzip(64), "gzip", limit=1_000_000, chunk=1 << 20)


def test_corrupt_and_truncated_bodies_are_clear_errors() -> None:
    with pytest.raises(AttemptFailed, match="not valid gzip") as info:
        read(b"this is not gzip at all", "gzip")
    assert not info.value.retryable
    with pytest.raises(AttemptFailed, match="gzip body that ends early"):
        read(compress(TEXT, "gzip")[:-20], "gzip")
    with pytest.raises(AttemptFailed, match="not valid deflate"):
        read(b"\xff" * 100, "deflate")
    assert read(b"", "gzip") == b""  # no body at all (say, a 204) is not an error


def test_unknown_encoding_is_refused_up_front() -> None:
    with pytest.raises(AttemptFailed, match="content encoding 'zstd'"):
        BodyReader("zstd", "h", 100)
