"""One listing's media tree written back into a new folder, every byte checked against its hash.

The tree is built in a private folder beside the destination and renamed into place whole, so a
damaged object leaves nothing half-written behind. What to write, and where its bytes lie, is laid
out first in a temporary SQLite table beside it (its page cache bounded), a listing part and an
index object at a time: a restore of a million files holds no more than one of a thousand."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping
from itertools import groupby
from typing import BinaryIO
from pathlib import Path

import apsw

from ..backend import Backend
from ..errors import ArchiveError, CorruptObject, UsageError
from ..fsutil import private_opener
from .area import Area, as_area
from .listing import MediaFile, listing_parts
from .store import Piece, load_index, new_file_hash, read_index, read_object

PLAN = """
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -16384;
CREATE TABLE listed(path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER, mtime_ns INTEGER);
CREATE TABLE indexed(hash TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE piece(hash TEXT, seq INTEGER, object TEXT, object_size INTEGER, start INTEGER, length INTEGER,
                   PRIMARY KEY (hash, seq)) WITHOUT ROWID;
"""


def restore_media(store: Backend | Area, listing: str, dest: Path, only: Collection[str] | None = None) -> int:
    """Write the files of `listing` (those whose paths are in `only`, if given) under `dest` (absent
    or an empty folder); how many."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} is not an empty folder", hint="restore media into a new or empty folder")
    area = as_area(store)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.plan.", dir=dest.parent) as scratch:
        plan = _Plan(Path(scratch) / "plan.db")
        try:
            count = plan.add_listing(area, listing, only)
            plan.add_index(area)
            missing, first = plan.missing()
            if missing:
                raise ArchiveError(f"media store lacks {missing} file(s) of listing {listing[:16]}…, such as {first}",
                                   hint="run `syncd verify` on the target")
            _write_tree(area, listing, plan.in_pack_order(), dest)
        finally:
            plan.close()
    return count


def _write_tree(area: Area, listing: str, files: Iterator[tuple[MediaFile, list[Piece]]], dest: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        cache: tuple[str, bytes] = ("", b"")  # in pack order, each pack is fetched once and one is held
        for file, pieces in files:
            out_path = work / file.path
            try:
                out_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError:  # a file and a folder of the same name: no listing syncd wrote
                raise CorruptObject(f"media listing {listing[:16]}… names {file.path} inside a file",
                                    hint="run `syncd verify` on the target") from None
            check, size = new_file_hash(), 0
            with open(out_path, "wb", opener=private_opener) as out:
                for name, object_size, offset, length in pieces:
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


class _Plan:
    """The files to restore and the pieces they are made of, in a temporary table."""

    def __init__(self, path: Path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # names and hashes: as private as the tree
        self.db = apsw.Connection(str(path))
        self.db.execute(PLAN).fetchall()  # every statement run (the pragmas return rows)

    def add_listing(self, area: Area, listing: str, only: Collection[str] | None) -> int:
        with self.db:
            for part in listing_parts(area, listing):
                rows = [(f.path, f.hash, f.size, f.mtime_ns) for f in part if only is None or f.path in only]
                try:
                    self.db.executemany("INSERT INTO listed VALUES (?, ?, ?, ?)", rows)
                except apsw.ConstraintError:
                    raise CorruptObject(f"media listing {listing}: a damaged or unsafe entry",
                                        hint="run `syncd verify` on the target") from None
        return self.db.execute("SELECT count(*) FROM listed").fetchone()[0]

    def add_index(self, area: Area) -> None:
        """Where each listed file lies, from the store's index objects (a later one wins, as in load_index)."""
        with self.db:
            for key in sorted(area.names("index"), reverse=True):
                for file_hash, pieces in read_index(area, key).items():
                    self.db.execute("INSERT OR IGNORE INTO indexed VALUES (?)", (file_hash,))
                    if self.db.changes():
                        self.db.executemany("INSERT INTO piece VALUES (?, ?, ?, ?, ?, ?)",
                                            [(file_hash, seq, *piece) for seq, piece in enumerate(pieces)])

    def missing(self) -> tuple[int, str | None]:
        """How many listed files no index object names, and the first of them."""
        rows = self.db.execute("SELECT path FROM listed WHERE hash NOT IN (SELECT hash FROM indexed) ORDER BY path")
        first = rows.fetchone()
        return (0, None) if first is None else (1 + sum(1 for _ in rows), first[0])

    def in_pack_order(self) -> Iterator[tuple[MediaFile, list[Piece]]]:
        """Each listed file with its pieces, in the order of its first piece: each pack is read once."""
        rows = self.db.execute("""
            SELECT l.path, l.hash, l.size, l.mtime_ns, p.object, p.object_size, p.start, p.length
            FROM listed AS l LEFT JOIN piece AS first ON first.hash = l.hash AND first.seq = 0
            LEFT JOIN piece AS p ON p.hash = l.hash
            ORDER BY first.object, first.start, l.path, p.seq""")
        for _, group in groupby(rows, key=lambda row: row[0]):
            group = list(group)
            pieces = [tuple(row[4:]) for row in group if row[4] is not None]  # an empty file has none
            yield MediaFile(*group[0][:4]), pieces

    def close(self) -> None:
        self.db.close()


def write_media_file(store: Backend | Area, file: MediaFile, out: BinaryIO,
                     index: Mapping[str, list[Piece]] | None = None) -> int:
    """Write one listed file into `out`, reading only its pieces' byte ranges (a sticker is a few KiB
    of a 16 MiB pack), every byte checked against its hash; the bytes written. `index`: the store's,
    if the caller holds it (a browser serving many files), else it is read."""
    area = as_area(store)
    pieces = (load_index(area) if index is None else index).get(file.hash)
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
