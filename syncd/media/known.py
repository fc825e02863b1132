"""Which files a media store holds, by hash: a table in the private state dir, not a set in memory.

A pass asks it of every file it scans (a no-change pass over 100,000 files as much as any), so it
lives in SQLite, whose page cache is bounded, beside the names of the store's index objects it was
filled from. One listing of those names at the start of a pass proves it current: an index object
it has not read (written by another pass on the same store) is read then, one at a time; one it has
read but the store lost means the store is not what it was, and the table is filled again from the
store. It never claims a file the store lacks: a hash is added only after the index naming it is written.

The table has a random `tag`, made anew whenever it is emptied. A scan saved with the tag holds only
hashes the table held then, so while the tag is the same its files need not be asked one by one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import apsw

from ..fsutil import PRIVATE_FILE, private_dirs
from .area import Area
from .store import read_index

FILE = "index.db"
OLD_CACHE = "index-cache.json"  # what the table replaced: one JSON list of every hash, read whole
SCHEMA = """
CREATE TABLE IF NOT EXISTS stored(hash BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_from(name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tag(value BLOB NOT NULL);
"""
TAG_BYTES = 16


class KnownFiles:
    """The files of the store in `area`, as a table in the file `path` (0600)."""

    def __init__(self, area: Area, path: Path):
        self.area, self.path = area, Path(path)
        self._db: apsw.Connection | None = None

    def __contains__(self, file_hash: object) -> bool:
        if not isinstance(file_hash, str):
            return False
        try:
            key = bytes.fromhex(file_hash)
        except ValueError:
            return False
        return self._current().execute("SELECT 1 FROM stored WHERE hash = ?", (key,)).fetchone() is not None

    @property
    def tag(self) -> bytes:
        """Changes whenever the table forgets files (see the module's docstring)."""
        return self._current().execute("SELECT value FROM tag").fetchone()[0]

    def update(self, files: Iterable[str]) -> None:
        """Add the hashes of `files` (a MediaStore's new files), once the index naming them is written."""
        with self._current() as db:
            db.executemany("INSERT OR IGNORE INTO stored VALUES (?)", ((bytes.fromhex(h),) for h in files))

    def seal(self) -> None:
        """Record the store's index objects as read, after a pass whose additions went through `update`."""
        with self._current() as db:
            db.executemany("INSERT OR IGNORE INTO read_from VALUES (?)", ((n,) for n in self.area.names("index")))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _current(self) -> apsw.Connection:
        if self._db is None:
            self._db = self._open()
            self._catch_up(self._db)
        return self._db

    def _open(self) -> apsw.Connection:
        private_dirs(self.path.parent)
        (self.path.parent / OLD_CACHE).unlink(missing_ok=True)
        for attempt in (1, 2):
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))  # SQLite's journal takes its mode
            db = apsw.Connection(str(self.path))
            try:
                db.execute(SCHEMA)
                return db
            except apsw.Error:  # a damaged table: it is only a cache of the store's index, filled again
                db.close()
                if attempt == 2:
                    raise
                for stale in (self.path, Path(f"{self.path}-journal")):
                    stale.unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _catch_up(self, db: apsw.Connection) -> None:
        names = set(self.area.names("index"))
        read = {name for (name,) in db.execute("SELECT name FROM read_from")}
        with db:
            tagged = db.execute("SELECT value FROM tag").fetchall()
            if read - names or len(tagged) != 1 or len(tagged[0][0] or b"") != TAG_BYTES:
                # The store lost an index object (it is not the store the table knew), or the table is new.
                db.execute("DELETE FROM stored; DELETE FROM read_from; DELETE FROM tag")
                db.execute("INSERT INTO tag VALUES (?)", (secrets.token_bytes(TAG_BYTES),))
                read = set()
            for key in sorted(names - read):
                db.executemany("INSERT OR IGNORE INTO stored VALUES (?)",
                               ((bytes.fromhex(h),) for h in read_index(self.area, key)))
                db.execute("INSERT INTO read_from VALUES (?)", (key,))

