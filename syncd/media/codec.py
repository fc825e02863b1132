"""The media store's small metadata objects: compressed JSON, named by the SHA-256 of their bytes,
read bounded and checked (the target is not trusted)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zlib

from ..backend import Backend
from ..errors import CorruptObject

# SHA-256, not BLAKE3: hashlib is in the standard library and, with the CPU's SHA extensions, hashes at
# ~850 MB/s here (tests/benchmarks/test_media_bench.py), faster than the disks and links media travels
# over; blake3 (~2.3 GB/s here) would add a compiled dependency for no gain a user would see.
HASH_NAME = "sha256"
HEX = re.compile(r"[0-9a-f]{64}")
MAX_META = 64 << 20  # an index or a listing, compressed or not: 20,000 files need under 2 MiB


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_hash(value: object) -> bool:
    return isinstance(value, str) and HEX.fullmatch(value) is not None


def write_meta(backend: Backend, prefix: str, value: object) -> str:
    """Write `value` as a metadata object under `prefix`; its hash (the object's name)."""
    data = zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 1)  # 1: a no-change pass spends its time here
    name = digest(data)
    backend.write(prefix + name, io.BytesIO(data))
    return name


def read_meta(backend: Backend, prefix: str, name: str) -> object:
    """The value of metadata object `prefix + name`, its bytes checked against its name."""
    what = f"media object {prefix}{name}"
    if not is_hash(name):
        raise CorruptObject(f"{what}: not a media object name", hint="run `syncd verify` on the target")
    with backend.open(prefix + name, MAX_META) as f:
        data = f.read()
    if digest(data) != name:
        raise CorruptObject(f"{what}: its bytes do not match its hash",
                            hint="the target holds damaged or forged media; run `syncd verify` on it")
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(data, MAX_META)
        if inflate.unconsumed_tail or not inflate.eof:
            raise ValueError("too large or truncated")
        return json.loads(raw)
    except (zlib.error, ValueError) as e:
        raise CorruptObject(f"{what} does not decode ({e})", hint="run `syncd verify` on the target") from None
