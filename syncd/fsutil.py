"""Durable file writes: what survives a power cut is the old file or the new one, whole."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

COPY_CHUNK = 1 << 20
SENDFILE_CHUNK = 1 << 30


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_stream(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy the rest of `src` into `dst`: in the kernel when both are plain files (a first
    version's base is tens of MiB, copied into the local archive and then to each folder target)."""
    try:
        src_fd, dst_fd, offset = src.fileno(), dst.fileno(), src.tell()
    except (AttributeError, OSError, ValueError):
        shutil.copyfileobj(src, dst, COPY_CHUNK)
        return
    dst.flush()
    try:
        while sent := os.sendfile(dst_fd, src_fd, offset, SENDFILE_CHUNK):
            offset += sent
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ESPIPE) or offset != src.tell():
            raise
        shutil.copyfileobj(src, dst, COPY_CHUNK)  # not a file sendfile can read (a pipe, a socket)
        return
    src.seek(offset)


def atomic_write(path: Path, data: bytes | BinaryIO) -> int:
    """Write `data` to `path` via a temporary file, fsync and rename; return bytes written.

    The temporary name starts with a dot so folder listings can skip it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                out.write(data)
            else:
                copy_stream(data, out)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return size
