"""One pass over a media folder: scan it, store what the target lacks, write the version's listing."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..backend import Backend
from ..fsutil import open_untouched
from .listing import MediaFile, write_listing
from .scan import Seen, load_scan, save_scan, scan
from .store import CHUNK_SIZE, SMALL_FILE, MediaStore, new_file_hash


@dataclass(frozen=True)
class MediaPass:
    listing: str  # the hash of this version's listing
    files: int
    files_read: int
    changed_while_read: int  # left for the next pass
    bytes_sent: int
    objects_sent: int


def scan_state_file(state_dir: Path, folder: Path) -> Path:
    key = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    return Path(state_dir) / "media" / f"scan-{key}.json"


def back_up(backend: Backend, folder: Path, state_dir: Path) -> MediaPass:
    """Store the media folder's files the target lacks, then its listing; what the pass did."""
    folder = Path(folder)
    state = scan_state_file(state_dir, folder)
    store = MediaStore(backend)
    kept, read, moved = [], 0, 0
    for seen in scan(folder, load_scan(state)):
        if seen.hash is None or not store.has(seen.hash):
            read += 1
            seen = ingest(store, folder, seen)
            if seen is None:
                moved += 1
                continue
        kept.append(seen)
    store.commit()  # objects, then the index, then the listing that names them
    listing = write_listing(backend, [MediaFile(s.path, s.hash, s.size, s.mtime_ns) for s in kept])
    save_scan(state, kept)
    return MediaPass(listing, len(kept), read, moved, store.bytes_sent, store.objects_sent)


def ingest(store: MediaStore, folder: Path, seen: Seen) -> Seen | None:
    """Read one file into the store; it with its hash, or None if it changed while being read."""
    fd = open_untouched(folder / seen.path)
    with os.fdopen(fd, "rb", buffering=0) as f:
        before = os.fstat(fd)
        if (before.st_size, before.st_mtime_ns, before.st_ino) != seen.key:
            return None
        file_hash, size = new_file_hash(), 0
        if seen.size < SMALL_FILE:
            data = f.read(SMALL_FILE)
            file_hash.update(data)
            size = len(data)
        else:
            pieces = []
            while block := f.read(CHUNK_SIZE):
                file_hash.update(block)
                size += len(block)
                pieces.append(store.add_chunk(block))
        after = os.fstat(fd)
    if size != seen.size or (after.st_size, after.st_mtime_ns, after.st_ino) != seen.key:
        return None
    if seen.size < SMALL_FILE:
        store.add_small(file_hash.hexdigest(), data)
    else:
        store.add_large(file_hash.hexdigest(), pieces)
    return replace(seen, hash=file_hash.hexdigest())
