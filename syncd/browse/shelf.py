"""The versions a browser has asked for, each restored privately once and kept open.

A version is restored (with its history: statuses and earlier texts) into a 0700
temp folder the first time a page needs it; later pages of that version read the
open database. Only the last KEEP_OPEN versions stay: an older one is closed and its
file removed. Everything is removed when the shelf closes (the server's exit).

One lock guards restores and reads: pages are served by several threads, and a
restored database, its history file and an apsw connection are one reader's at a time.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import apsw
import pluggy

from ..archive.manifest import Version
from ..archive.plain import Archive
from ..errors import UsageError
from ..fsutil import private_opener
from ..media.links import MediaLinks
from ..media.restore import write_media_file
from ..readback.restore import read_manifest, reading_area, restore
from ..reading.model import Annotations, Reading, open_database

KEEP_OPEN = 4  # restored versions kept at once: a 1 M-message database is ~300 MB on disk

AnnotationsFor = Callable[[Archive, int, apsw.Connection], Annotations]


@dataclass
class Opened:
    """One restored version, read."""

    source: str
    version: Version
    reading: Reading
    path: Path
    # Messages no longer in this version (kept by history), per conversation, in time order.
    deleted: dict[str, list]


class Shelf:
    """The archives being browsed, and the versions of them restored so far."""

    def __init__(self, archives: Sequence[Archive], pm: pluggy.PluginManager,
                 annotations: AnnotationsFor | None = None, scratch: Path | None = None,
                 search: Callable[[str, str, int], Sequence] | None = None):
        self.archives = {a.source: a for a in archives}
        self.pm, self.annotations = pm, annotations
        self.search = search  # (source, query, limit) → syncd.reading.search hits; None: no search box answers
        self.lock = threading.RLock()
        self._folder = Path(tempfile.mkdtemp(prefix="syncd-browse-", dir=scratch))  # 0700
        self._open: OrderedDict[tuple[str, int], Opened] = OrderedDict()
        self._restored = 0  # media files restored so far, each into a folder of its own

    def close(self) -> None:
        with self.lock:
            for opened in self._open.values():
                opened.reading.db.close()
            self._open.clear()
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def sources(self) -> list[str]:
        return sorted(self.archives)

    def versions(self, source: str) -> tuple[Version, ...]:
        return read_manifest(self._archive(source)).versions

    def open(self, source: str, number: int | None = None) -> Opened:
        """The version `number` (default: the latest) of `source`, restored on first use. Call under `lock`."""
        archive = self._archive(source)
        # Every link names its version, and an open version is served as it was restored: reading the
        # manifest again (a download from the target) for each such page and media file would change nothing.
        if (source, number) in self._open:
            self._open.move_to_end((source, number))
            return self._open[source, number]
        manifest = read_manifest(archive)
        if number is not None and not 1 <= number <= len(manifest.versions):
            raise UsageError(f"{source!r} has no version {number}", hint="pick one from the version list")
        version = manifest.version(number)
        key = (source, version.number)
        found = self._open.get(key)
        if found is not None:
            self._open.move_to_end(key)
            return found
        while len(self._open) >= KEEP_OPEN:
            _, old = self._open.popitem(last=False)
            old.reading.db.close()
            old.path.unlink(missing_ok=True)
        path = self._folder / f"{self.sources.index(source)}-{version.number}.db"  # names from us, not the archive
        restore(archive, path, number=version.number, force=True)
        db = open_database(path)
        notes = self.annotations(archive, version.number, db) if self.annotations else Annotations()
        reading = Reading(db, source, self.pm, annotations=notes)
        if (listing := manifest.media_at(version.number)) is not None and reading.profile is not None:
            reading.media = MediaLinks(reading_area(archive), listing)
        deleted: dict[str, list] = {}
        for message in notes.deleted:
            deleted.setdefault(message.conversation, []).append(message)
        for messages in deleted.values():
            messages.sort(key=lambda m: m.time)
        opened = Opened(source, version, reading, path, deleted)
        self._open[key] = opened
        return opened

    def media_file(self, source: str, number: int, path: str) -> BinaryIO | None:
        """One media file of a version, restored (its bytes checked) into the private folder and
        opened there, its folder already removed (the bytes go when the file is closed); None if
        the version lists no such file. Call under `lock`."""
        links = self.open(source, number).reading.media
        if links is None or path not in links.files:
            return None
        self._restored += 1
        dest = self._folder / f"media-{self._restored}"  # names from us, not the archive
        out = open(dest, "w+b", opener=private_opener)
        try:
            write_media_file(links.area, links.files[path], out, links.index)  # only its bytes of a pack are read
            out.seek(0)
            return out
        except BaseException:
            out.close()
            raise
        finally:
            dest.unlink(missing_ok=True)

    def _archive(self, source: str) -> Archive:
        found = self.archives.get(source)
        if found is None:
            raise UsageError(f"no source named {source!r} here", hint="pick one from the list of sources")
        return found
