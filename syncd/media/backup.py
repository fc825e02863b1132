"""One pass over media folders: scan them, store what the store lacks, write the version's listing.

Media comes from a folder on disk (`--media DIR`, FolderMedia) or from the files a source kind lists
for a database (an iOS backup's attachments, ListedMedia; see syncd.source.SourceMedia). Each origin
gives a key naming its last scan in the state dir, a scan (each file with its last hash while its
marks still match, so it is not read), and a way to read one file into the store that refuses a
file that changed while it was read.

A pass with nothing new opens no file and writes nothing: every file keeps its hash from the last
scan (size, mtime and inode unchanged), the store's files are asked of a table (syncd.media.known)
that one listing of its index objects proves current, and the listing of the last pass is named
again, not rewritten. Files stream through in path order, so a pass holds no list of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..backend import Backend
from ..errors import SourceError
from ..fsutil import atomic_write, open_untouched, private_dirs
from ..log import get_logger
from ..source import SourceMedia
from .area import Area, as_area
from .codec import MAX_META, is_hash
from .listing import MediaFile, safe_path, write_listing
from .known import FILE as KNOWN_FILES
from .known import KnownFiles
from .match import Absent
from .scan import HEADER, LastScan, Matched, ScanWriter, Seen, scan
from .store import MediaStore

log = get_logger(__name__)
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
    the database's messages: those naming no listed file are listed as absent.

    Every file streams by once, in path order (scan, last scan, store, new scan): what the pass holds
    does not grow with the number of files."""
    area, media_state = as_area(store), Path(state_dir) / "media"
    origins = {label: FolderMedia(f) if isinstance(f, (str, Path)) else f for label, f in folders.items()}
    known = KnownFiles(area, media_state / KNOWN_FILES)
    writer: MediaStore | None = None
    read = moved = count = 0
    same = True
    try:
        for label, origin in sorted(origins.items()):
            state = scan_state_file(state_dir, origin)
            last = LastScan(state)
            # The last scan's hashes were all in the store's table then; the same tag: they are now.
            trusted = last.tag == known.tag
            scanned = Matched(origin.files(), last)
            kept: ScanWriter | None = None  # written from the first file that differs from the last scan
            same_so_far, prefix = 0, HEADER.size
            try:
                for seen, handle in scanned:
                    stored = seen.hash is not None and (trusted and scanned.same or seen.hash in known)
                    if not stored:
                        read += 1
                        writer = writer or MediaStore(area, known)
                        seen = origin.ingest(writer, seen, handle)
                        if seen is None:
                            moved += 1
                    if kept is None and stored and scanned.same and not scanned.dropped:
                        same_so_far, prefix = same_so_far + 1, last.position
                        continue
                    kept = kept or ScanWriter(state, known.tag, last, same_so_far, prefix)
                    if seen is not None:
                        kept.add(seen)
                if writer is not None:
                    writer.commit()  # objects, then the index, then the listings that name them
                if kept is None and scanned.dropped:
                    kept = ScanWriter(state, known.tag, last, same_so_far, prefix)
                if kept is not None:
                    kept.commit()  # else every file is as the last scan on disk says
            except BaseException:
                if kept is not None:
                    kept.discard()
                raise
            count += kept.count if kept else same_so_far
            same &= kept is None
    finally:
        if writer is not None:
            writer.discard()  # no writer thread outlives a pass that failed, nor its uncommitted objects
    if writer is not None:
        known.seal()
    known.close()
    last = media_state / LAST_LISTING
    wanted = references()
    labels = sorted(f"{label}\0{origin.key}" for label, origin in origins.items())
    said = {"folders": labels, "references": hashlib.sha256("\0".join(wanted).encode()).hexdigest()}
    listing, absent_count = _last_listing(last, said) if same else (None, 0)
    if listing is None:
        absent = Absent(wanted)
        listing = write_listing(area, _listed(origins, state_dir, absent), absent.references)
        absent_count = len(absent.references())
        private_dirs(media_state)
        atomic_write(last, json.dumps({**said, "listing": listing, "absent": absent_count}).encode())
    sent = (writer.bytes_sent, writer.objects_sent) if writer else (0, 0)
    return MediaPass(listing, count, read, moved, *sent, absent=absent_count)


def _listed(origins: Mapping[str, MediaOrigin], state_dir: Path, absent: Absent) -> Iterator[MediaFile]:
    """The files the pass kept, read back from the scans it saved, in path order (`label/path`)."""
    for label, origin in sorted(origins.items(), key=lambda item: item[0] + "/"):
        for seen in LastScan(scan_state_file(state_dir, origin)):
            path = f"{label}/{seen.path}" if label else seen.path
            absent.seen(path)
            yield MediaFile(path, seen.hash, seen.size, seen.mtime_ns)


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


class MediaOrigin(Protocol):
    key: str  # names the origin's last scan in the state dir

    def files(self) -> Iterable[tuple[Seen, Any]]:
        """Its files in path order (no hash), each with what `ingest` needs to read it."""

    def ingest(self, store: MediaStore, seen: Seen, handle: Any) -> Seen | None:
        """Read one file into `store`: it with its hash, or None if it changed while read (or went)."""


class FolderMedia:
    """A media folder: files marked by (size, mtime, inode), read without moving their access time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.key = str(self.folder.resolve())

    def files(self) -> Iterator[tuple[Seen, None]]:
        return scan(self.folder)

    def ingest(self, store: MediaStore, seen: Seen, handle: None = None) -> Seen | None:
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
    """Media a source kind lists, marked by the kind's own record: an unchanged mark is not read.

    The kind's listing streams through (an iterator in path order, as an iOS backup's Manifest.db
    gives it); a list is sorted first."""

    def __init__(self, key: str, files: Iterable[SourceMedia]):
        self.key = key
        self.listed = sorted(files, key=lambda f: f.path) if isinstance(files, Sequence) else files

    def files(self) -> Iterator[tuple[Seen, SourceMedia]]:
        last = None
        for f in self.listed:
            if not safe_path(f.path):  # a path that would leave the folder it is restored into: not the app's
                continue
            if last is not None and f.path <= last:  # twice (in two domains), or out of order: not listed
                if f.path != last:
                    log.warning("%s: left out: the source lists its media out of path order", f.path)
                continue
            last = f.path
            yield Seen(f.path, f.size, f.mtime_ns, f.mark, None), f

    def ingest(self, store: MediaStore, seen: Seen, handle: SourceMedia) -> Seen | None:
        try:
            stream = handle.open()
        except FileNotFoundError:  # listed, but gone (or never there): the next pass looks again
            return None
        except SourceError as e:  # one damaged file holds back neither the others nor the database
            log.warning("%s: left out of this pass: %s", seen.path, e)
            return None
        with stream:
            file_hash = store.add_stream(stream, seen.size)
        return None if file_hash is None else seen._replace(hash=file_hash)
