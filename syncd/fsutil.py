"""Durable, private file writes: what survives a power cut is the old file or the new one, whole,
and what syncd creates is its user's alone (folders 0700, files 0600) whatever the umask.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import threading
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


# Never waiting for a FIFO's writer, nor handing the descriptor to a child process.
UNTOUCHED_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
NOT_PLAIN = "not a plain file (a folder, FIFO or device)"


def open_untouched(path: Path, *, follow_symlinks: bool = True) -> int:
    """A descriptor to read the regular file `path` without updating its access time, where the OS
    lets us: the phone's files are read as if they weren't (O_NOATIME is only allowed to the file's
    owner). Anything but a regular file (a FIFO would block the pass forever) raises OSError."""
    flags = UNTOUCHED_FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        fd = os.open(path, flags)
    try:
        plain = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        plain = False
    if not plain:
        os.close(fd)
        raise OSError(errno.EINVAL, NOT_PLAIN, str(path))
    return fd


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


class SyncedTogether:
    """Files written now and made durable together by `commit`, for a pass that names them all at
    once afterwards (the media store's objects, then its index): instead of one wait on the disk per
    file in the pass's way, each file's writeback starts as it is written and `commit` waits once.

    Until `commit` a file lies under a temporary name (`.<name>.<random>.tmp`, what `sweep_temps`
    removes after a crash), so a name never shows a file that isn't whole on disk: `commit` fsyncs
    every file, then renames each to its name, then fsyncs each folder once. `write` may be called
    from several threads.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[str, Path]] = []

    def write(self, path: Path, data: bytes | BinaryIO) -> None:
        import tempfile

        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                data = data if isinstance(data, (bytes, bytearray, memoryview)) else data.read()
                if not write_direct(out.fileno(), data):
                    out.write(data)
                    out.flush()
                    start_writeback(out.fileno())
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self.pending.append((temp, path))  # whole: `commit` may name it

    def commit(self) -> list[Path]:
        """Make every file written durable under its name; those names (nothing is left pending)."""
        pending, self.pending = self.pending, []
        try:
            for temp, _ in pending:
                fsync_file(Path(temp))
            for temp, path in pending:
                os.replace(temp, path)
        except BaseException:
            self.pending = pending
            self.discard()
            raise
        for folder in dict.fromkeys(path.parent for _, path in pending):
            fsync_dir(folder)
        return [path for _, path in pending]

    def discard(self) -> None:
        """Remove the files not committed (a pass that failed): none of them is named."""
        pending, self.pending = self.pending, []
        for temp, _ in pending:
            Path(temp).unlink(missing_ok=True)


DIRECT_BLOCK = 4096  # O_DIRECT's alignment of memory, length and offset on the filesystems syncd meets
DIRECT_PIECE = 4 << 20  # written through each thread's aligned buffer of this size
_direct = threading.local()  # each writer thread's aligned buffer, kept: no page faults per object


def write_direct(fd: int, data: bytes | bytearray | memoryview) -> bool:
    """Write `data` to the empty file `fd` bypassing the page cache (O_DIRECT); False, with nothing
    written, where the OS or filesystem doesn't take it (tmpfs, macOS): the caller writes as usual.

    Why: on the machines measured a buffered write costs the CPU about 4 s a GiB in the kernel, a
    direct one a tenth of that, and the media pass is bound by its 2 cores (hashing besides). The
    bytes are copied into an aligned buffer, the last block written whole and the file cut back to
    its length; the fsync at commit then has only metadata left to wait for.
    """
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or not data:
        return False
    import fcntl
    import mmap

    buffer = getattr(_direct, "buffer", None)
    if buffer is None:
        buffer = _direct.buffer = mmap.mmap(-1, DIRECT_PIECE)  # page-aligned
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag)
    except OSError:
        return False
    view, source = memoryview(buffer), memoryview(data)
    try:
        for start in range(0, len(data), DIRECT_PIECE):
            piece = source[start:start + DIRECT_PIECE]
            padded = -(-len(piece) // DIRECT_BLOCK) * DIRECT_BLOCK
            view[:len(piece)] = piece
            view[len(piece):padded] = bytes(padded - len(piece))
            written = 0
            while written < padded:
                try:
                    written += os.write(fd, view[written:padded])
                except OSError as e:
                    if e.errno != errno.EINVAL or start or written:
                        raise
                    return False  # the filesystem refuses direct writes
        os.ftruncate(fd, len(data))
        return True
    finally:
        view.release()
        source.release()
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages now, without waiting: its fsync later
    finds them (mostly) written. On Linux POSIX_FADV_DONTNEED starts that writeback (and drops only
    clean pages, none yet); elsewhere a no-op, and the fsync does it all."""
    if hasattr(os, "posix_fadvise") and sys.platform.startswith("linux"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


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
