"""Checking a media store: every listing named, every file in it found through the index, and every
byte of every file hashed again (objects read once each, in pack order)."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import SyncdError
from .area import Area
from .listing import MediaFile, read_listing
from .store import load_index, new_file_hash, read_object

MAX_PROBLEMS = 20  # a store damaged throughout is reported by its first problems, not a line per file


def check_media(area: Area, listings: Iterable[str]) -> tuple[int, list[str]]:
    """(files checked, problems) for the files of `listings` in `area`."""
    problems: list[str] = []
    try:
        index = load_index(area)
        files: dict[str, MediaFile] = {}
        for listing in sorted(set(listings)):
            for file in read_listing(area, listing):
                files.setdefault(file.hash, file)
    except SyncdError as e:
        return 0, [str(e)]
    stored = area.names("objects")
    cache: tuple[str, bytes] = ("", b"")
    ordered = sorted(files.values(), key=lambda f: tuple(index[f.hash][0][::2]) if index.get(f.hash) else ("", 0))
    for file in ordered:
        if len(problems) >= MAX_PROBLEMS:
            problems.append("… (more problems not listed)")
            break
        pieces = index.get(file.hash)
        if pieces is None:
            problems.append(f"media file {file.path} is not in the store's index")
            continue
        check, size = new_file_hash(), 0
        try:
            for name, object_size, offset, length in pieces:
                if area.key(name) not in stored:
                    raise _Missing(f"media object {name[:16]}… (of {file.path}) is missing")
                if cache[0] != name:
                    cache = (name, read_object(area, name, object_size))
                piece = cache[1][offset:offset + length]
                check.update(piece)
                size += len(piece)
        except (SyncdError, _Missing) as e:
            problems.append(str(e))
            continue
        if size != file.size or check.hexdigest() != file.hash:
            problems.append(f"media file {file.path} does not match its hash (damaged or forged index)")
    return len(files), problems


class _Missing(Exception):
    pass
