"""What a media folder holds, reading only what changed.

The walk never follows a symlink (one inside the folder names a file walked under its own path; one
leaving it names what isn't the chat's) and skips anything but regular files and folders. A file
whose (size, mtime_ns, inode) match the last scan keeps its hash without being opened; the last scan
lives in the private state dir, 0600.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import NamedTuple

from ..fsutil import atomic_write, private_dirs
from .codec import MAX_META

# The last scan, binary because a pass with nothing new over 20,000 files spends its time reading it:
# MAGIC, the count and the byte length of the paths, the paths (UTF-8, NUL-separated: a file name
# holds no NUL), then one fixed record per path: size, mtime_ns, inode, SHA-256.
MAGIC = b"syncdsc1"
HEADER = struct.Struct("<8sII")
RECORD = struct.Struct("<QqQ32s")


class Seen(NamedTuple):
    path: str  # relative, `/`-separated
    size: int
    mtime_ns: int
    inode: int
    hash: str | None  # None: changed since the last scan (or new), to be read

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.inode)


def walk(folder: Path) -> list[tuple[str, os.stat_result]]:
    """Every regular file below `folder`: (relative path, its lstat), sorted by path."""
    found, pending = [], [(Path(folder), "")]
    while pending:
        path, rel = pending.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                name = f"{rel}{entry.name}"
                if stat.S_ISDIR(info.st_mode):
                    pending.append((Path(entry.path), name + "/"))
                elif stat.S_ISREG(info.st_mode):
                    found.append((name, info))
    return sorted(found)


def scan(folder: Path, previous: dict[str, tuple[int, int, int, str]]) -> list[Seen]:
    """The folder's files, each with the hash of the last scan when (size, mtime, inode) still match."""
    seen, last = [], previous.get
    for rel, info in walk(folder):
        size, mtime_ns, inode = info.st_size, info.st_mtime_ns, info.st_ino
        before = last(rel)
        same = before is not None and before[0] == size and before[1] == mtime_ns and before[2] == inode
        seen.append(Seen(rel, size, mtime_ns, inode, before[3] if same else None))
    return seen


def load_scan(path: Path) -> dict[str, tuple[int, int, int, str]]:
    """The last scan saved at `path`, path -> (size, mtime_ns, inode, hash); {} if there is none or it
    doesn't decode (then every file is read again)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_META + 1)
        magic, count, paths_len = HEADER.unpack_from(data)
        start = HEADER.size + paths_len
        if magic != MAGIC or len(data) != start + count * RECORD.size:
            return {}
        paths = data[HEADER.size:start].decode("utf-8", "surrogateescape").split("\0") if count else []
        if len(paths) != count:
            return {}
        return {rel: (size, mtime_ns, inode, digest.hex())
                for rel, (size, mtime_ns, inode, digest) in zip(paths, RECORD.iter_unpack(data[start:]))}
    except (OSError, ValueError, struct.error):
        return {}


def save_scan(path: Path, seen: list[Seen]) -> None:
    kept = [s for s in seen if s.hash]
    paths = "\0".join(s.path for s in kept).encode("utf-8", "surrogateescape")
    records = b"".join(RECORD.pack(s.size, s.mtime_ns, s.inode, bytes.fromhex(s.hash)) for s in kept)
    private_dirs(path.parent)
    atomic_write(path, HEADER.pack(MAGIC, len(kept), len(paths)) + paths + records)
