"""Reading an HTTP answer's body: its content encoding decoded, its decoded size capped.

Both transports (the async client and the legacy blocking one) feed the raw bytes they receive
to one BodyReader, so the two modes accept and refuse the same answers. zlib is asked for at
most DECODE_STEP_BYTES per call, so a small compressed answer that would expand to gigabytes
(a decompression bomb) hits the size cap after a bounded amount of work and memory.
"""

from __future__ import annotations

import zlib

from ygg.backends.base import AttemptFailed

ACCEPT_ENCODING = "gzip, deflate"  # what we decode; httpx would also offer br/zstd if installed
DECODE_STEP_BYTES = 64 * 1024
_HEAD_BYTES = 2  # zlib's header: an unwrapped deflate body is refused within these
_IDENTITY = ("", "identity")
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyReader:
    """Collects one answer's body, decoding gzip or deflate as it arrives."""

    def __init__(
        self, content_encoding: str | None, host: str, limit_bytes: int, *, keep: bool = True
    ) -> None:
        self.keep = keep  # False: a streamed answer, read as it comes and not kept here
        self.coding = (content_encoding or "").strip().lower()
        self.host = host
        self.limit_bytes = limit_bytes
        self._chunks: list[bytes] = []
        self._fresh: list[bytes] = []  # decoded by the current feed()
        self._size = 0
        self._raw_size = 0
        self._inflater: zlib._Decompress | None = None
        if self.coding not in _IDENTITY:
            if self.coding not in _WBITS:
                raise AttemptFailed(
                    f"{host} answered with content encoding {self.coding!r}, which ygg does not "
                    f"decode (it asks for {ACCEPT_ENCODING})",
                    retryable=False,
                )
            self._inflater = zlib.decompressobj(_WBITS[self.coding])
        # The first bytes of a deflate body, kept until zlib has accepted its header.
        self._head: bytes | None = b"" if self.coding == "deflate" else None

    def feed(self, raw: bytes) -> bytes:
        """Takes the next bytes as received and returns them decoded; raises AttemptFailed once
        the body is too large (decoded) or cannot be decoded."""
        self._fresh = []
        self._decode(raw)
        fresh = b"".join(self._fresh)
        if self.keep and fresh:
            self._chunks.append(fresh)
        return fresh

    def _decode(self, raw: bytes) -> None:
        self._raw_size += len(raw)
        if self._inflater is None:
            self._keep(raw)
            return
        if self._head is not None:
            self._head += raw
        try:
            self._inflate(raw)
        except zlib.error as exc:
            head, self._head = self._head, None
            if head is None:
                raise self._undecodable(exc) from None
            # Some servers send "deflate" without its zlib wrapper; httpx allows it too.
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                self._inflate(head)
            except zlib.error as exc:
                raise self._undecodable(exc) from None
        if self._head is not None and len(self._head) >= _HEAD_BYTES:
            self._head = None  # zlib took the header: this is wrapped deflate

    def _inflate(self, data: bytes) -> None:
        inflater = self._inflater
        assert inflater is not None
        while not inflater.eof:
            out = inflater.decompress(data, DECODE_STEP_BYTES)
            self._keep(out)
            data = inflater.unconsumed_tail
            # A full step may leave output pending inside zlib even with no input left.
            if not data and len(out) < DECODE_STEP_BYTES:
                return

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.limit_bytes:
            decoded = f" once decoded ({self.coding})" if self._inflater is not None else ""
            raise AttemptFailed(
                f"{self.host} sent more than {self.limit_bytes} bytes{decoded}", retryable=False
            )
        if data:
            self._fresh.append(data)

    def _undecodable(self, exc: zlib.error) -> AttemptFailed:
        return AttemptFailed(
            f"{self.host} sent a body that is not valid {self.coding}: {exc}", retryable=False
        )

    def body(self) -> bytes:
        """The whole decoded body (when kept), once every byte has been fed."""
        self.finish()
        return b"".join(self._chunks)

    def finish(self) -> None:
        """Raises AttemptFailed if the encoded body ended before its end."""
        if self._inflater is not None and self._raw_size and not self._inflater.eof:
            raise AttemptFailed(
                f"{self.host} sent a {self.coding} body that ends early", retryable=False
            )
