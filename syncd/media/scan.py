"""What a media folder holds, reading only what changed.

The walk never follows a symlink (one inside the folder names a file walked under its own path; one
leaving it names what isn't the chat's) and skips anything but regular files and folders. A file
whose (size, mtime_ns, inode) match the last scan keeps its hash without being opened; the last scan
lives in the private state dir, 0600.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import atomic_write, private_dirs
from .codec import MAX_META, is_hash


@dataclass(frozen=True)
class Seen:
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


def scan(folder: Path, previous: dict[str, Seen]) -> list[Seen]:
    """The folder's files, each with the hash of the last scan when (size, mtime, inode) still match."""
    seen = []
    for rel, info in walk(folder):
        key = (info.st_size, info.st_mtime_ns, info.st_ino)
        last = previous.get(rel)
        seen.append(Seen(rel, *key, last.hash if last and last.key == key else None))
    return seen


def load_scan(path: Path) -> dict[str, Seen]:
    """The last scan saved at `path` ({} if none, or if it is unreadable: then every file is read again)."""
    try:
        with open(path, "rb") as f:
            rows = json.loads(f.read(MAX_META + 1))
        out = {}
        for row in rows:
            # Checked as cheaply as a no-change pass over 20,000 files needs (it spends its time here).
            if len(row) == 5 and type(row[1]) is type(row[2]) is type(row[3]) is int and is_hash(row[4]):
                out[row[0]] = Seen(*row)
        return out
    except (OSError, ValueError, TypeError):
        return {}


def save_scan(path: Path, seen: list[Seen]) -> None:
    private_dirs(path.parent)
    rows = [[s.path, s.size, s.mtime_ns, s.inode, s.hash] for s in seen if s.hash]
    atomic_write(path, json.dumps(rows, separators=(",", ":")).encode())
