"""The media store's small metadata objects: compressed JSON, named by the SHA-256 of their bytes,
read bounded and checked (the target is not trusted)."""

from __future__ import annotations

import json
import zlib

from ..backend import Backend
from ..errors import CorruptObject
from .area import HEX, Area, PlainArea, digest

# SHA-256, not BLAKE3: hashlib is in the standard library and, with the CPU's SHA extensions, hashes at
# ~850 MB/s here (tests/benchmarks/test_media_bench.py), faster than the disks and links media travels
# over; blake3 (~2.3 GB/s here) would add a compiled dependency for no gain a user would see.
HASH_NAME = "sha256"
COMPRESSION = 1  # zlib's level: a no-change pass spends its time here
MAX_META = 64 << 20  # an index or a listing, compressed or not: 20,000 files need under 2 MiB


def is_hash(value: object) -> bool:
    return isinstance(value, str) and HEX.fullmatch(value) is not None


def encode_meta(value: object) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), COMPRESSION)


def put_meta(area: Area, kind: str, value: object) -> str:
    """Write `value` as a metadata object of `kind` in `area`; its name (the hash of its plain bytes)."""
    return put_encoded(area, kind, encode_meta(value))


def put_encoded(area: Area, kind: str, data: bytes) -> str:
    """Write a metadata object already encoded (compressed JSON); its name."""
    name = digest(data)
    area.write(kind, name, data)
    return name


def get_meta(area: Area, kind: str, name: str, *, key: str | None = None) -> object:
    """The value of metadata object `name` (or the one stored under `key`), its bytes checked."""
    what = f"media {kind} {name or key}"
    if key is None and not is_hash(name):
        raise CorruptObject(f"{what}: not a media object name", hint="run `syncd verify` on the target")
    data = area.read(kind, key or area.key(name), MAX_META)
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(data, MAX_META)
        if inflate.unconsumed_tail or not inflate.eof:
            raise ValueError("too large or truncated")
        return json.loads(raw)
    except (zlib.error, ValueError) as e:
        raise CorruptObject(f"{what} does not decode ({e})", hint="run `syncd verify` on the target") from None


def _area_of(backend: Backend, prefix: str) -> tuple[Area, str]:
    """The plain area and kind a prefix such as `media/listings/` names."""
    root, kind = prefix.rstrip("/").rsplit("/", 1)
    return PlainArea(backend, root + "/"), kind


def write_meta(backend: Backend, prefix: str, value: object) -> str:
    """`put_meta` in the clear, by prefix (`media/index/`, `media/listings/`)."""
    return put_meta(*_area_of(backend, prefix), value)


def read_meta(backend: Backend, prefix: str, name: str) -> object:
    """`get_meta` in the clear, by prefix."""
    return get_meta(*_area_of(backend, prefix), name)
