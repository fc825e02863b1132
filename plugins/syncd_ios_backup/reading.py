"""Reading the backup's files: never through a symlink, never moving an access time, never past a limit."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.errors import SourceError
from syncd.fsutil import open_untouched


def open_in_backup(path: Path) -> int:
    """A descriptor for a plain file of the backup: never through a symlink, never touching its
    access time, never waiting on a FIFO (a folder, FIFO or device is refused)."""
    try:
        return open_untouched(path, follow_symlinks=False)
    except OSError as e:
        raise SourceError(f"{path} can't be read: {e.strerror}", hint="is the backup complete?") from None


def read_bounded(path: Path, limit: int) -> bytes:
    """The whole of a file in the backup, refused past `limit` bytes; the access time is kept."""
    fd = open_in_backup(path)
    try:
        parts, got = [], 0
        while got <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - got))):
            parts.append(chunk)
            got += len(chunk)
        data = b"".join(parts)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SourceError(f"{path} is larger than {limit:,} bytes", hint="the backup may be damaged")
    return data
