"""One version's media: every file the folder held then (path, hash, size, mtime), in compact objects.

A listing is never changed or deleted, so a file deleted from the phone stays restorable from the
listings that held it. It also names, as `absent`, the references of the version's messages to files
no folder held then (never downloaded, expired, in iCloud): a later listing holds them once they appear.

A listing of up to PART_FILES files is one object (format 1). A larger one is written in parts as the
pass streams its files by, each part a format-1 listing of PART_FILES files, then a head (format 2)
naming the parts in order: a pass holds one part, and no object nears MAX_META however large the tree
(one object of a million files would be ~150 MiB of JSON, past what a reader takes from a target)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..backend import Backend
from ..errors import CorruptObject
from .area import Area, as_area
from .codec import COMPRESSION, get_meta, is_hash, put_encoded

LISTINGS = "media/listings/"
LISTING_FORMAT = 1  # the files (and the absent references) in one object
PARTED_FORMAT = 2  # a head: the names of format-1 parts, in order, and the absent references
PART_FILES = 50_000  # ~7 MiB of JSON, ~2.5 MiB stored
MAX_PARTS = 10_000  # half a billion files
LISTING_BATCH = 1000  # files encoded at a time
DAMAGED = "run `syncd verify` on the target"


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
    area = as_area(store)
    if isinstance(files, Sequence):
        files = sorted(files, key=lambda f: f.path)
    part, parts = _Part(), []
    for f in files:
        if part.count == PART_FILES:
            parts.append(put_encoded(area, "listings", part.finish()))
            part = _Part()
        part.add(f)
    absent = sorted(absent() if callable(absent) else absent)
    if not parts:
        return put_encoded(area, "listings", part.finish(absent))
    parts.append(put_encoded(area, "listings", part.finish()))
    head = {"format": PARTED_FORMAT, "parts": parts} | ({"absent": absent} if absent else {})
    return put_encoded(area, "listings", zlib.compress(json.dumps(head, separators=(",", ":")).encode(), COMPRESSION))


class _Part:
    """A format-1 listing encoded and compressed as its files come: only the compressed bytes
    (~50 a file) are held."""

    def __init__(self):
        self.deflate, self.batch, self.count = zlib.compressobj(COMPRESSION), [], 0
        self.out = [self.deflate.compress(b'{"format":%d,"files":[' % LISTING_FORMAT)]

    def add(self, f: MediaFile) -> None:
        self.batch.append([f.path, f.hash, f.size, f.mtime_ns])
        self.count += 1
        if len(self.batch) == LISTING_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            comma = "," if self.count > len(self.batch) else ""  # rows went before these
            self.out.append(self.deflate.compress((comma + _rows(self.batch)).encode()))
            self.batch = []

    def finish(self, absent: Sequence[str] = ()) -> bytes:
        self._flush()
        text = "]" + (',"absent":' + json.dumps(list(absent), separators=(",", ":")) if absent else "") + "}"
        return b"".join(self.out + [self.deflate.compress(text.encode()), self.deflate.flush()])


def _rows(rows: list) -> str:
    return json.dumps(rows, separators=(",", ":"))[1:-1]


def read_listing(store: Backend | Area, name: str) -> list[MediaFile]:
    return read_listing_whole(store, name)[0]


def read_listing_whole(store: Backend | Area, name: str) -> tuple[list[MediaFile], list[str]]:
    """A listing's files and the references it records as absent, every entry checked (a path
    listed twice, in one part or two, is refused)."""
    area = as_area(store)
    value = get_meta(area, "listings", name)
    files, paths = [], set()
    for part in _parts(area, name, value):
        files += _checked_files(part, name, paths)
    return files, _checked_absent(value, name)


def listing_parts(store: Backend | Area, name: str) -> Iterator[list[MediaFile]]:
    """A listing's files a part at a time (its only part, for a listing of one object), every entry
    checked; a path twice within a part is refused, across parts it is the caller's to refuse."""
    area = as_area(store)
    for part in _parts(area, name, get_meta(area, "listings", name)):
        yield _checked_files(part, name, set())


def _parts(area: Area, name: str, value: object) -> Iterator[object]:
    """The decoded format-1 objects a listing's files are in: itself, or the parts its head names."""
    if not (isinstance(value, dict) and value.get("format") == PARTED_FORMAT):
        yield value
        return
    parts = value.get("parts")
    if not (isinstance(parts, list) and 0 < len(parts) <= MAX_PARTS and all(is_hash(p) for p in parts)):
        raise CorruptObject(f"media listing {name} names its parts wrongly", hint=DAMAGED)
    for part in parts:
        part_value = get_meta(area, "listings", part)
        if isinstance(part_value, dict) and "absent" in part_value:
            raise CorruptObject(f"media listing {name}: part {part[:16]}… is not a part", hint=DAMAGED)
        yield part_value


def _checked_files(value: object, name: str, paths: set[str]) -> list[MediaFile]:
    """The files of a format-1 listing `value`, each checked; `paths`, those seen so far, grows."""
    if not isinstance(value, dict) or value.get("format") != LISTING_FORMAT or not isinstance(value.get("files"), list):
        raise CorruptObject(f"media listing {name} is not a listing syncd wrote", hint=DAMAGED)
    files = []
    for row in value["files"]:
        if not (isinstance(row, list) and len(row) == 4 and safe_path(row[0]) and is_hash(row[1])
                and type(row[2]) is int and row[2] >= 0 and type(row[3]) is int) or row[0] in paths:
            raise CorruptObject(f"media listing {name}: a damaged or unsafe entry", hint=DAMAGED)
        paths.add(row[0])
        files.append(MediaFile(*row))
    return files


def _checked_absent(value: dict, name: str) -> list[str]:
    absent = value.get("absent", [])
    if not (isinstance(absent, list) and all(isinstance(r, str) for r in absent)):
        raise CorruptObject(f"media listing {name}: a damaged list of absent files", hint=DAMAGED)
    return absent


def safe_path(path: object) -> bool:
    """A relative path that stays inside the folder it is restored into."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path or path.startswith("/"):
        return False
    parts = PurePosixPath(path).parts
    return all(part not in ("", ".", "..") for part in parts) and "/".join(parts) == path
