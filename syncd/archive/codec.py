"""How object bytes are stored: each object records its codec in the manifest.

Every object is a zstd frame; on an encrypted target (`zstd+age`) that frame is
age-encrypted too, which syncd.archive.sealed adds and removes around this module.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

from ..errors import CorruptObject

ZSTD = "zstd"
ZSTD_AGE = "zstd+age"
# Deltas are small, so they get zstd's default level. A base is the whole mirror: level 2
# compresses it about 1.4x as fast as level 3 for 3% more bytes (a 1M-message mirror on two
# threads: 0.31 s, 65 MiB against 0.45 s, 63 MiB), and compressing is most of a first
# sync's time after reading the rows.
LEVELS = {"delta": 3, "base": 2}
CHUNK = 1 << 20
SUFFIX = {ZSTD: ".zst", ZSTD_AGE: ".zst.age"}
# What bounds decoding is the one size a forger can't raise: the stored size. Whoever can
# write to a plain target, or knows an encrypted one's public recipient, also chooses every
# size a manifest or a zstd frame header declares. syncd's objects expand 2-7x (sample
# mirrors: WeChat base 2.8x, iMessage base 7.2x, deltas 2-4x); a zstd bomb up to ~30,000x.
# The floor keeps small objects of mostly empty pages clear of the ratio.
DECODED_MAX_RATIO = 1024
DECODED_FLOOR = 64 << 20


class HashingFile:
    """A pass-through file (read or write) that hashes and counts the bytes it sees."""

    def __init__(self, inner: BinaryIO):
        self.inner, self.sha256, self.size = inner, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self._see(data)
        return data

    def write(self, data) -> int:
        self._see(data)
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()

    def _see(self, data) -> None:
        self.sha256.update(data)
        self.size += len(data)


def encode(plain: BinaryIO, stored: BinaryIO, codec: str = ZSTD, *, level: int = LEVELS["delta"]) -> tuple[int, str]:
    """Encode `plain` into `stored`; return the stored size and its sha256."""
    if codec != ZSTD:
        raise ValueError(f"unknown codec {codec!r}")
    import zstandard  # here and in decode: a pass with nothing new compresses nothing

    sink = HashingFile(stored)
    compressor = zstandard.ZstdCompressor(level=level, threads=-1)
    compressor.copy_stream(plain, sink, read_size=CHUNK, write_size=CHUNK)
    return sink.size, sink.sha256.hexdigest()


def decoded_limit(stored_size: int) -> int:
    """The most bytes an object of `stored_size` bytes may decode to."""
    return max(stored_size * DECODED_MAX_RATIO, DECODED_FLOOR)


def decode(stored: BinaryIO, plain: BinaryIO, codec: str, name: str) -> None:
    """Decode the seekable `stored` into `plain`, naming the object if it is damaged or a bomb."""
    if codec != ZSTD:
        raise CorruptObject(f"{name} uses codec {codec!r}, which this syncd doesn't know", hint="upgrade syncd")
    start = stored.tell()
    limit = decoded_limit(stored.seek(0, os.SEEK_END) - start)
    stored.seek(start)
    written = 0
    import zstandard

    try:
        with zstandard.ZstdDecompressor().stream_reader(stored, read_size=CHUNK) as reader:
            while chunk := reader.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    raise CorruptObject(f"{name} expands to more than {limit} bytes, far more than syncd's "
                                        "objects do (a zstd bomb?)", hint="restore from another target")
                plain.write(chunk)
    except zstandard.ZstdError as e:
        raise CorruptObject(f"{name} can't be decompressed: {e}") from None
