"""One pass over media folders: scan them, store what the store lacks, write the version's listing.

Media comes from a folder on disk (`--media DIR`, FolderMedia) or from the files a source kind lists
for a database (an iOS backup's attachments, ListedMedia; see syncd.source.SourceMedia). Each origin
gives a key naming its last scan in the state dir, a scan (each file with its last hash while its
marks still match, so it is not read), and a way to read one file into the store that refuses a
file that changed while it was read.

A pass with nothing new opens no file and writes nothing: every file keeps its hash from the last
scan (size, mtime and inode unchanged), the store's index comes from a cache that one listing of its
index objects proves current, and the listing of the last pass is named again, not rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..backend import Backend
from ..errors import SourceError
from ..fsutil import atomic_write, open_untouched, private_dirs
from ..source import SourceMedia
from .area import Area, as_area
from .codec import MAX_META, is_hash
from .listing import MediaFile, safe_path, write_listing
from .match import MediaIndex
from .scan import Seen, load_scan, save_scan, scan
from .store import MediaStore, load_index

log = logging.getLogger(__name__)
INDEX_CACHE = "index-cache.json"
LAST_LISTING = "last-listing.json"


@dataclass(frozen=True)
class MediaPass:
    listing: str  # the hash of this version's listing
    files: int
    files_read: int
    changed_while_read: int  # left for the next pass
    bytes_sent: int
    objects_sent: int
    absent: int = 0  # media references of the database's messages naming no file the listing holds


def scan_state_file(state_dir: Path, origin: MediaOrigin | Path) -> Path:
    key = origin.key if not isinstance(origin, (str, Path)) else str(Path(origin).resolve())
    return Path(state_dir) / "media" / f"scan-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"


def back_up(backend: Backend | Area, folder: Path, state_dir: Path) -> MediaPass:
    """Store the media folder's files the store lacks, then its listing; what the pass did."""
    return back_up_folders(backend, {"": Path(folder)}, state_dir)


def labelled(folders: Sequence[Path]) -> dict[str, Path]:
    """Each folder by the label its files are listed under: its name (`Attachments`), made unique."""
    labels: dict[str, Path] = {}
    for folder in dict.fromkeys(Path(f).expanduser().absolute() for f in folders):
        label = base = folder.name or "media"
        n = 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels[label] = folder
    return labels


def back_up_folders(store: Backend | Area, folders: Mapping[str, Path | MediaOrigin], state_dir: Path,
                    references: Callable[[], Sequence[str]] = tuple) -> MediaPass:
    """Like `back_up`, for several folders (or other origins: a source kind's listed media), each
    listed under its label (`label/path`; "" for none). `references` gives the media references of
    the database's messages: those naming no listed file are listed as absent."""
    area, media_state = as_area(store), Path(state_dir) / "media"
    origins = {label: FolderMedia(f) if isinstance(f, (str, Path)) else f for label, f in folders.items()}
    known = IndexCache(area, media_state / INDEX_CACHE)
    writer: MediaStore | None = None
    kept, read, moved, same = [], 0, 0, True
    try:
        for label, origin in sorted(origins.items()):
            state = scan_state_file(state_dir, origin)
            previous = load_scan(state)
            current = origin.scan(previous)
            unchanged = len(current) == len(previous)
            folder_kept = []
            for seen in current:
                if seen.hash is None or seen.hash not in known.hashes():
                    unchanged = False
                    read += 1
                    writer = writer or MediaStore(area, known.files())
                    seen = origin.ingest(writer, seen)
                    if seen is None:
                        moved += 1
                        continue
                folder_kept.append(seen)
            if writer is not None:
                writer.commit()  # objects, then the index, then the listings that name them
            if not unchanged:  # an unchanged folder's scan is on disk already
                save_scan(state, folder_kept)
            same &= unchanged
            kept.append((label, folder_kept))
    finally:
        if writer is not None:
            writer.discard()  # no writer thread outlives a pass that failed, nor its uncommitted objects
    if writer is not None:
        known.update(writer.files)
    last = media_state / LAST_LISTING
    wanted = references()
    labels = sorted(f"{label}\0{origin.key}" for label, origin in origins.items())
    said = {"folders": labels, "references": hashlib.sha256("\0".join(wanted).encode()).hexdigest()}
    listing, absent_count = _last_listing(last, said) if same else (None, 0)
    count = sum(len(seen) for _, seen in kept)
    if listing is None:
        files = [MediaFile(f"{label}/{s.path}" if label else s.path, s.hash, s.size, s.mtime_ns)
                 for label, seen in kept for s in seen]
        absent = MediaIndex(f.path for f in files).absent(wanted) if wanted else []
        listing, absent_count = write_listing(area, files, absent), len(absent)
        private_dirs(media_state)
        atomic_write(last, json.dumps({**said, "listing": listing, "absent": absent_count}).encode())
    sent = (writer.bytes_sent, writer.objects_sent) if writer else (0, 0)
    return MediaPass(listing, count, read, moved, *sent, absent=absent_count)


def _last_listing(path: Path, said: dict) -> tuple[str | None, int]:
    """The listing the last pass wrote and how many absent files it names, if it was of the same
    folders and message references."""
    try:
        with open(path, "rb") as f:
            last = json.loads(f.read(MAX_META))
        same = all(last.get(key) == value for key, value in said.items())
        absent = last.get("absent", 0)
        return (last["listing"], absent) if same and is_hash(last["listing"]) and type(absent) is int else (None, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None, 0


class IndexCache:
    """The store's index, kept in the state dir beside the names of the index objects it was read
    from: one listing of them proves it current, instead of reading every index object each pass."""

    def __init__(self, area: Area, path: Path):
        self.area, self.path = area, path
        self._names: list[str] | None = None
        self._files: dict | None = None
        self._hashes: set[str] | None = None

    def hashes(self) -> set[str]:
        if self._hashes is None:
            self._names = sorted(self.area.names("index"))
            cached = self._load()
            if cached is not None and cached.get("names") == self._names and isinstance(cached.get("hashes"), list):
                self._hashes = set(cached["hashes"])
            else:
                self._files = load_index(self.area)
                self._hashes = set(self._files)
                self._save()
        return self._hashes

    def files(self) -> dict:
        """The whole index (read from the store only when a new file is to be stored)."""
        if self._files is None:
            self._files = load_index(self.area)
        return self._files

    def update(self, files: dict) -> None:
        self._files, self._hashes = files, set(files)
        self._names = sorted(self.area.names("index"))
        self._save()

    def _load(self) -> dict | None:
        try:
            with open(self.path, "rb") as f:
                value = json.loads(f.read(MAX_META))
            return value if isinstance(value, dict) else None
        except (OSError, ValueError):
            return None

    def _save(self) -> None:
        private_dirs(self.path.parent)
        atomic_write(self.path, json.dumps({"names": self._names, "hashes": sorted(self._hashes)}).encode())


class MediaOrigin(Protocol):
    key: str  # names the origin's last scan in the state dir

    def scan(self, previous: dict[str, tuple[int, int, int, str]]) -> list[Seen]: ...

    def ingest(self, store: MediaStore, seen: Seen) -> Seen | None: ...


class FolderMedia:
    """A media folder: files marked by (size, mtime, inode), read without moving their access time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.key = str(self.folder.resolve())

    def scan(self, previous: dict[str, tuple[int, int, int, str]]) -> list[Seen]:
        return scan(self.folder, previous)

    def ingest(self, store: MediaStore, seen: Seen) -> Seen | None:
        """Read one file into the store; it with its hash, or None if it changed while being read."""
        try:
            fd = open_untouched(self.folder / seen.path)
        except FileNotFoundError:  # deleted since the scan: the next pass lists the folder as it is then
            return None
        with os.fdopen(fd, "rb", buffering=0) as f:  # changed since the scan: the marks after reading say so
            file_hash = store.add_stream(f, seen.size, lambda: _marks(fd) == seen.key)
        return None if file_hash is None else seen._replace(hash=file_hash)


def _marks(fd: int) -> tuple[int, int, int]:
    info = os.fstat(fd)
    return (info.st_size, info.st_mtime_ns, info.st_ino)


class ListedMedia:
    """Media a source kind lists, marked by the kind's own record: an unchanged mark is not read."""

    def __init__(self, key: str, files: Sequence[SourceMedia]):
        self.key = key
        # A path that would leave the folder it is restored into is not the app's: never listed.
        self.files = {f.path: f for f in files if safe_path(f.path)}

    def scan(self, previous: dict[str, tuple[int, int, int, str]]) -> list[Seen]:
        seen = []
        for path, f in sorted(self.files.items()):
            before = previous.get(path)
            same = before is not None and before[:3] == (f.size, f.mtime_ns, f.mark)
            seen.append(Seen(path, f.size, f.mtime_ns, f.mark, before[3] if same else None))
        return seen

    def ingest(self, store: MediaStore, seen: Seen) -> Seen | None:
        try:
            stream = self.files[seen.path].open()
        except FileNotFoundError:  # listed, but gone (or never there): the next pass looks again
            return None
        except SourceError as e:  # one damaged file holds back neither the others nor the database
            log.warning("%s: left out of this pass: %s", seen.path, e)
            return None
        with stream:
            file_hash = store.add_stream(stream, seen.size)
        return None if file_hash is None else seen._replace(hash=file_hash)
