"""One version's media: every file the folder held then (path, hash, size, mtime), one compact object.

A listing is never changed or deleted, so a file deleted from the phone stays restorable from the
listings that held it. It also names, as `absent`, the references of the version's messages to files
no folder held then (never downloaded, expired, in iCloud): a later listing holds them once they appear."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..backend import Backend
from ..errors import CorruptObject
from .area import Area, as_area
from .codec import COMPRESSION, get_meta, is_hash, put_encoded

LISTINGS = "media/listings/"
LISTING_FORMAT = 1
LISTING_BATCH = 1000  # files encoded at a time


@dataclass(frozen=True)
class MediaFile:
    path: str  # relative, `/`-separated
    hash: str
    size: int
    mtime_ns: int


def write_listing(store: Backend | Area, files: Iterable[MediaFile],
                  absent: Sequence[str] | Callable[[], Sequence[str]] = ()) -> str:
    """Write a listing of `files` (a list, or an iterable in path order, streamed) and the `absent`
    references (a callable is asked once every file has gone by); its name."""
    if isinstance(files, Sequence):
        files = sorted(files, key=lambda f: f.path)
    # Encoded and compressed as the files stream by: only the compressed listing (~50 bytes a file) is held.
    deflate, out, batch = zlib.compressobj(COMPRESSION), [], []
    text = '{"format":%d,"files":[' % LISTING_FORMAT
    for f in files:
        batch.append([f.path, f.hash, f.size, f.mtime_ns])
        if len(batch) == LISTING_BATCH:
            out.append(deflate.compress((text + _rows(batch)).encode()))
            text, batch = ",", []
    text += _rows(batch) + "]"
    absent = sorted(absent() if callable(absent) else absent)
    text += (',"absent":' + json.dumps(absent, separators=(",", ":")) if absent else "") + "}"
    out += [deflate.compress(text.encode()), deflate.flush()]
    return put_encoded(as_area(store), "listings", b"".join(out))


def _rows(rows: list) -> str:
    return json.dumps(rows, separators=(",", ":"))[1:-1]


def read_listing(store: Backend | Area, name: str) -> list[MediaFile]:
    return read_listing_whole(store, name)[0]


def read_listing_whole(store: Backend | Area, name: str) -> tuple[list[MediaFile], list[str]]:
    """A listing's files and the references it records as absent, every entry checked."""
    value = get_meta(as_area(store), "listings", name)
    if not isinstance(value, dict) or value.get("format") != LISTING_FORMAT or not isinstance(value.get("files"), list):
        raise CorruptObject(f"media listing {name} is not a listing syncd wrote", hint="run `syncd verify` on the target")
    files, paths = [], set()
    for row in value["files"]:
        if not (isinstance(row, list) and len(row) == 4 and safe_path(row[0]) and is_hash(row[1])
                and type(row[2]) is int and row[2] >= 0 and type(row[3]) is int) or row[0] in paths:
            raise CorruptObject(f"media listing {name}: a damaged or unsafe entry", hint="run `syncd verify` on the target")
        paths.add(row[0])
        files.append(MediaFile(*row))
    absent = value.get("absent", [])
    if not (isinstance(absent, list) and all(isinstance(r, str) for r in absent)):
        raise CorruptObject(f"media listing {name}: a damaged list of absent files", hint="run `syncd verify` on the target")
    return files, absent


def safe_path(path: object) -> bool:
    """A relative path that stays inside the folder it is restored into."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path or path.startswith("/"):
        return False
    parts = PurePosixPath(path).parts
    return all(part not in ("", ".", "..") for part in parts) and "/".join(parts) == path
