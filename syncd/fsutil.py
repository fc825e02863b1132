"""Durable, private file writes: what survives a power cut is the old file or the new one, whole,
and what syncd creates is its user's alone (folders 0700, files 0600) whatever the umask.
"""

from __future__ import annotations

import errno
import io
import os
import time
from pathlib import Path
from typing import BinaryIO

COPY_CHUNK = 1 << 20
SENDFILE_CHUNK = 1 << 30
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
TEMP_SUFFIX = ".tmp"  # atomic_write's temporary files: `.<name>.<random>.tmp`


def private_opener(path, flags: int) -> int:
    """For `open(path, mode, opener=private_opener)`: a file it creates is 0600."""
    return os.open(path, flags, PRIVATE_FILE)


def open_untouched(path: Path) -> int:
    """A descriptor to read `path` without updating its access time, where the OS lets us: the
    phone's files are read as if they weren't (O_NOATIME is only allowed to the file's owner)."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, os.O_RDONLY)


def read_head(path: Path, size: int) -> bytes:
    """The first `size` bytes of a file, read without touching its access time."""
    fd = open_untouched(path)
    try:
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def private_dirs(path: Path) -> None:
    """`mkdir -p` whose new folders are 0700 (Path.mkdir gives missing parents the umask's mode)."""
    missing = []
    path = Path(path)
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            if not folder.is_dir():
                raise


def sweep_temps(folder: Path, min_age: float = 0.0, now: float | None = None) -> int:
    """Delete the temporary files atomic_write left in `folder` when its process died, if last
    written at least `min_age` seconds before `now` (default: the local clock); how many went.

    Best effort: a folder that can't be listed or a file that can't be removed stays as it was.
    """
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime >= min_age:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed


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
    import shutil  # imported by what copies, not by every command that imports this module

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

    The temporary name starts with a dot so folder listings can skip it; mkstemp makes it
    0600, and the rename keeps that.
    """
    import tempfile  # on first use: a pass with nothing new writes nothing

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                out.write(data)
            elif isinstance(data, io.BytesIO):  # in one write: read() hands over the bytes it wraps, no copy
                out.write(data.read())
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


def copy_untouched(src: Path, dst: Path) -> bool:
    """Copy `src` to a new private file `dst` through `open_untouched`; False if `src` is missing."""
    try:
        fd = open_untouched(src)
    except FileNotFoundError:
        return False
    try:
        with open(dst, "wb", opener=private_opener) as out:
            while chunk := os.read(fd, COPY_CHUNK):
                out.write(chunk)
        return True
    finally:
        os.close(fd)
