"""One listing's media tree written back into a new folder, every byte checked against its hash.

The tree is built in a private folder beside the destination and renamed into place whole, so a
damaged object leaves nothing half-written behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection
from typing import BinaryIO
from pathlib import Path

from ..backend import Backend
from ..errors import ArchiveError, CorruptObject, UsageError
from ..fsutil import private_opener
from .area import Area, as_area
from .listing import MediaFile, read_listing
from .store import load_index, new_file_hash, read_object


def restore_media(store: Backend | Area, listing: str, dest: Path, only: Collection[str] | None = None) -> int:
    """Write the files of `listing` (those whose paths are in `only`, if given) under `dest` (absent
    or an empty folder); how many."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} is not an empty folder", hint="restore media into a new or empty folder")
    area = as_area(store)
    files = read_listing(area, listing)
    if only is not None:
        files = [f for f in files if f.path in only]
    index = load_index(area)
    missing = [f.path for f in files if f.hash not in index]
    if missing:
        raise ArchiveError(f"media store lacks {len(missing)} file(s) of listing {listing[:16]}…, such as {missing[0]}",
                           hint="run `syncd verify` on the target")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        cache: tuple[str, bytes] = ("", b"")
        # In pack order, so each pack is fetched once and only one is held at a time.
        for file in sorted(files, key=lambda f: tuple(index[f.hash][0][::2]) if index[f.hash] else ("", 0)):
            out_path = work / file.path
            try:
                out_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError:  # a file and a folder of the same name: no listing syncd wrote
                raise CorruptObject(f"media listing {listing[:16]}… names {file.path} inside a file",
                                    hint="run `syncd verify` on the target") from None
            check, size = new_file_hash(), 0
            with open(out_path, "wb", opener=private_opener) as out:
                for name, object_size, offset, length in index[file.hash]:
                    if cache[0] != name:
                        cache = (name, read_object(area, name, object_size))
                    piece = cache[1][offset:offset + length]
                    check.update(piece)
                    size += len(piece)
                    out.write(piece)
            if size != file.size or check.hexdigest() != file.hash:
                raise CorruptObject(f"media file {file.path} does not match its hash",
                                    hint="the target holds damaged or forged media; run `syncd verify` on it")
            os.utime(out_path, ns=(file.mtime_ns, file.mtime_ns))
        if dest.exists():
            dest.rmdir()
        os.rename(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return len(files)


def write_media_file(store: Backend | Area, file: MediaFile, out: BinaryIO) -> int:
    """Write one listed file into `out`, reading only its pieces' byte ranges (a sticker is a few KiB
    of a 16 MiB pack), every byte checked against its hash; the bytes written."""
    area = as_area(store)
    pieces = load_index(area).get(file.hash)
    if pieces is None:
        raise ArchiveError(f"media store lacks {file.path}", hint="run `syncd verify` on the target")
    check, size = new_file_hash(), 0
    for name, object_size, offset, length in pieces:  # checked: within the object, the object bounded
        if size + length > file.size:
            break
        piece = area.read_range("objects", area.key(name), object_size, offset, length)
        check.update(piece)
        size += out.write(piece)
    if size != file.size or check.hexdigest() != file.hash:
        raise CorruptObject(f"media file {file.path} does not match its hash",
                            hint="the target holds damaged or forged media; run `syncd verify` on it")
    return size
