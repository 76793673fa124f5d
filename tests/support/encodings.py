"""Compressed HTTP bodies for the test hosts: gzip and deflate, and a gzip bomb.

Step(encoding="gzip")                                   # the host compresses its answer
Step(body=zeros_gzip(1024), headers=(("Content-Encoding", "gzip"),))   # 1 GiB of zeros
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Literal

Encoding = Literal["gzip", "deflate", "raw-deflate"]
MIB = 1024 * 1024
WBITS: dict[Encoding, int] = {"gzip": 31, "deflate": 15, "raw-deflate": -15}


def compress(body: bytes, encoding: Encoding) -> bytes:
    """`body` as sent with Content-Encoding gzip or deflate ("raw-deflate": deflate without
    its zlib wrapper, as some servers send it)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, WBITS[encoding])
    return compressor.compress(body) + compressor.flush()


def header_value(encoding: Encoding) -> str:
    return "deflate" if encoding == "raw-deflate" else encoding


@functools.cache
def zeros_gzip(size_mib: int) -> bytes:
    """A valid gzip stream of `size_mib` MiB of zeros, about a thousand times smaller.

    Built from one fully flushed deflate block repeated (each such block stands on its own),
    so making it costs a fraction of a second instead of compressing the whole size.
    """
    zeros = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty last block
    crc = 0
    for _ in range(size_mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # magic, deflate, no flags, unknown OS
    trailer = struct.pack("<II", crc, (size_mib * MIB) & 0xFFFFFFFF)
    return header + block * size_mib + final + trailer
