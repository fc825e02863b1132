"""What a media folder holds, in path order, streamed: memory stays flat however many files it has.

The walk never follows a symlink (one inside the folder names a file walked under its own path; one
leaving it names what isn't the chat's) and skips anything but regular files and folders. A file
whose (size, mtime_ns, inode) match the last scan keeps its hash without being opened: the walk and
the last scan are both in path order, so they are joined as they stream by (see `matched`). The
last scan lives in the private state dir, 0600, and is written record by record as the pass goes.
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from ..fsutil import TEMP_SUFFIX, fsync_dir, private_dirs

# The last scan, binary because a pass with nothing new over 20,000 files spends its time reading it:
# MAGIC, the tag of the store table its hashes were found in (syncd.media.known), the count of
# records and the byte length of what follows (a truncated file is seen before any record is
# trusted), then per file in path order: a RECORD (the length of its UTF-8 path, size, mtime_ns,
# inode, SHA-256) and the path.
MAGIC = b"syncdsc2"
HEADER = struct.Struct("<8s16sQQ")
RECORD = struct.Struct("<HQqQ32s")
MAX_PATH_BYTES = 0xFFFF
T = TypeVar("T")


class Seen(NamedTuple):
    path: str  # relative, `/`-separated
    size: int
    mtime_ns: int
    inode: int
    hash: str | None  # None: changed since the last scan (or new), to be read

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.inode)


def walk(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file below `folder`: (relative path, its lstat), in path order, as found.

    Only one folder's names are held at a time (to sort them): a folder's entries sort by name, a
    subfolder's by its name and `/`, so a depth-first walk yields paths in plain string order.
    Folders are opened relative to their parent, never through a symlink."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield from _walk(fd, "")
    finally:
        os.close(fd)


def _walk(fd: int, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    with os.scandir(fd) as entries:
        names = sorted(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name
                       for e in entries if e.is_dir(follow_symlinks=False) or e.is_file(follow_symlinks=False))
    for name in names:
        try:
            if name.endswith("/"):
                sub = os.open(name[:-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                try:
                    yield from _walk(sub, rel + name)
                finally:
                    os.close(sub)
                continue
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:  # gone since the folder was listed
            continue
        if stat.S_ISREG(info.st_mode):
            yield rel + name, info


def scan(folder: Path) -> Iterator[tuple[Seen, None]]:
    """The folder's files in path order, none with a hash yet (see `Matched`)."""
    for rel, info in walk(folder):
        yield Seen(rel, info.st_size, info.st_mtime_ns, info.st_ino, None), None


class Matched(Generic[T]):
    """The files of a scan ((file, what its origin gives with it), in path order), each with the
    last scan's hash while its (size, mtime, inode) still match. While it is consumed, `same` says
    whether the file just given is the last scan's record unchanged; `dropped` counts the last
    scan's files not matched (changed or gone), all of them once the scan is consumed."""

    def __init__(self, current: Iterable[tuple[Seen, T]], previous: Iterable[Seen]):
        self.current, self.previous = current, iter(previous)
        self.dropped, self.same = 0, False

    def __iter__(self) -> Iterator[tuple[Seen, T]]:
        before = next(self.previous, None)
        for seen, handle in self.current:
            while before is not None and before.path < seen.path:
                self.dropped += 1
                before = next(self.previous, None)
            at = before is not None and before.path == seen.path
            self.same = at and before.key == seen.key
            if self.same:
                seen = seen._replace(hash=before.hash)
            elif at:
                self.dropped += 1
            yield seen, handle
            if at:  # read on only now: the last scan's reader stays at the end of this file's record
                before = next(self.previous, None)
        self.same = False
        while before is not None:
            self.dropped += 1
            before = next(self.previous, None)


class LastScan:
    """The last scan saved at `path`, in path order, and the `tag` of the store table it was checked
    against; no files if there is none or it doesn't decode (then every file is read again). A
    record damaged midway ends it: the files after are read. `position` is the byte just after the
    last record given."""

    def __init__(self, path: Path):
        self.path, self.tag, self.count, self.position = Path(path), b"", 0, HEADER.size
        try:
            with open(self.path, "rb") as f:
                magic, self.tag, count, body = HEADER.unpack(f.read(HEADER.size))
                if magic == MAGIC and os.fstat(f.fileno()).st_size == HEADER.size + body:
                    self.count = count
        except (OSError, struct.error):
            pass

    def __iter__(self) -> Iterator[Seen]:
        if not self.count:
            return
        with open(self.path, "rb") as f:
            f.seek(HEADER.size)
            last = None
            for _ in range(self.count):
                record = f.read(RECORD.size)
                if len(record) != RECORD.size:
                    return
                length, size, mtime_ns, inode, digest = RECORD.unpack(record)
                raw = f.read(length)
                if len(raw) != length or not length:
                    return
                rel = raw.decode("utf-8", "surrogateescape")
                if last is not None and rel <= last:  # not in order: not a scan this module wrote
                    return
                last = rel
                self.position += RECORD.size + length
                yield Seen(rel, size, mtime_ns, inode, digest.hex())


class ScanWriter:
    """A scan written record by record (in path order) into a private temporary file beside `path`,
    put in its place by `commit` (fsynced), or removed by `discard`. It may start with the first
    `count` records of the last scan, copied as they are (`prefix` bytes of it)."""

    def __init__(self, path: Path, tag: bytes, last: LastScan | None = None, count: int = 0, prefix: int = HEADER.size):
        self.path, self.tag = Path(path), tag
        private_dirs(self.path.parent)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX, dir=self.path.parent)
        self._out = os.fdopen(fd, "wb")
        self._out.write(HEADER.pack(MAGIC, tag, 0, 0))
        self.count, self._body = 0, 0
        if count:
            with open(last.path, "rb") as f:
                f.seek(HEADER.size)
                self._out.write(f.read(prefix - HEADER.size))
            self.count, self._body = count, prefix - HEADER.size

    def add(self, seen: Seen) -> None:
        raw = seen.path.encode("utf-8", "surrogateescape")
        if len(raw) > MAX_PATH_BYTES:  # no file system has such paths; it is read again next time
            return
        self._out.write(RECORD.pack(len(raw), seen.size, seen.mtime_ns, seen.inode, bytes.fromhex(seen.hash)))
        self._out.write(raw)
        self.count += 1
        self._body += RECORD.size + len(raw)

    def commit(self) -> None:
        try:
            self._out.seek(0)
            self._out.write(HEADER.pack(MAGIC, self.tag, self.count, self._body))
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise
        fsync_dir(self.path.parent)

    def discard(self) -> None:
        self._out.close()
        Path(self._tmp).unlink(missing_ok=True)
