"""One version's media: every file the folder held then (path, hash, size, mtime), one compact object.

A listing is never changed or deleted, so a file deleted from the phone stays restorable from the
listings that held it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from ..backend import Backend
from ..errors import CorruptObject
from .area import Area, as_area
from .codec import get_meta, is_hash, put_meta

LISTINGS = "media/listings/"
LISTING_FORMAT = 1


@dataclass(frozen=True)
class MediaFile:
    path: str  # relative, `/`-separated
    hash: str
    size: int
    mtime_ns: int


def write_listing(store: Backend | Area, files: list[MediaFile]) -> str:
    rows = [[f.path, f.hash, f.size, f.mtime_ns] for f in sorted(files, key=lambda f: f.path)]
    return put_meta(as_area(store), "listings", {"format": LISTING_FORMAT, "files": rows})


def read_listing(store: Backend | Area, name: str) -> list[MediaFile]:
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
    return files


def safe_path(path: object) -> bool:
    """A relative path that stays inside the folder it is restored into."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path or path.startswith("/"):
        return False
    parts = PurePosixPath(path).parts
    return all(part not in ("", ".", "..") for part in parts) and "/".join(parts) == path
