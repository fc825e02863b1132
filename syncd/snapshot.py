"""A private, consistent copy of the phone's database.

The phone's folder is read, never written: SQLite would create `-shm`/`-wal`
files beside any database it opens (even read-only, in WAL mode), so the file
and its companions are copied to a staging folder first and only the copy is
ever opened. A copy is accepted only if nothing changed while it was read;
otherwise it is retried, because archiving a torn copy would record garbage
as a version.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import apsw

from .errors import SourceError

SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
# Copied together so the database and its uncommitted-to-file history are of one moment.
COMPANIONS = ("-wal", "-journal")
STABLE_COPY_TRIES = 6
STABLE_COPY_DELAY = 0.25  # seconds, doubled after each torn copy
# A header whose first KiB uses this many distinct byte values is noise, not a format.
ENCRYPTED_DISTINCT_BYTES = 200

WAIT_HINT = "a sync tool may still be copying it; syncd will try again on the next pass"


@dataclass
class Snapshot:
    """A staged copy of a source database, safe to open with SQLite."""

    source: Path
    path: Path
    size: int

    def discard(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def take_snapshot(source: Path, staging: Path) -> Snapshot:
    """Copy `source` (and its -wal/-journal) into `staging` and check the copy.

    Raises SourceError naming the problem when the file is missing, unreadable,
    empty, not SQLite, encrypted, truncated, damaged, or never holds still.
    """
    source = Path(source)
    _check_source_path(source)
    _check_header(source, _read_head(source, 4096), source.stat().st_size)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    copy = staging / "source.db"
    delay = STABLE_COPY_DELAY
    for _ in range(STABLE_COPY_TRIES):
        if _copy_once(source, copy):
            break
        time.sleep(delay)
        delay *= 2
    else:
        shutil.rmtree(staging, ignore_errors=True)
        raise SourceError(f"{source} kept changing while it was being read", hint=WAIT_HINT)
    try:
        _check_copy(source, copy)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Snapshot(source=source, path=copy, size=copy.stat().st_size)


def _check_source_path(source: Path) -> None:
    try:
        st = source.stat()
    except FileNotFoundError:
        raise SourceError(f"{source} does not exist", hint="check the path to the chat database") from None
    except OSError as e:
        raise SourceError(f"{source} can't be read: {e.strerror}") from None
    if not source.is_file():
        raise SourceError(f"{source} is not a file", hint="give the path of the database file itself")
    if st.st_size == 0:
        raise SourceError(f"{source} is empty (0 bytes)", hint=WAIT_HINT)


def _open_readonly(path: Path) -> int:
    """Open for reading without updating the access time, where the OS lets us."""
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0)
    try:
        return os.open(path, flags)
    except PermissionError:
        # O_NOATIME is only allowed to the file's owner; plain reading still is.
        return os.open(path, os.O_RDONLY)


def _read_head(path: Path, n: int) -> bytes:
    try:
        fd = _open_readonly(path)
    except OSError as e:
        raise SourceError(f"{path} can't be read: {e.strerror}", hint="check its permissions") from None
    try:
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def _check_header(source: Path, head: bytes, size: int) -> None:
    """Reject what is plainly not a complete SQLite database, before copying anything."""
    if not head.startswith(SQLITE_MAGIC):
        if len(head) >= 1024 and len(set(head[:1024])) >= ENCRYPTED_DISTINCT_BYTES:
            raise SourceError(
                f"{source} is not a plain SQLite database: its bytes look encrypted (SQLCipher?)",
                hint="syncd archives decrypted databases; decrypt it first (e.g. WeChat's EnMicroMsg.db)",
            )
        raise SourceError(f"{source} is not a SQLite database", hint="check the path to the chat database")
    if len(head) < HEADER_SIZE:
        raise SourceError(f"{source} is truncated ({size} bytes, less than a header)", hint=WAIT_HINT)
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise SourceError(f"{source} has a damaged header (page size {page_size})")
    change_counter, pages, valid_for = head[24:28], int.from_bytes(head[28:32], "big"), head[92:96]
    expected = pages * page_size
    # The page count in the header is only trustworthy when stamped by the same write.
    if change_counter == valid_for and pages and size < expected:
        raise SourceError(f"{source} is truncated: {size:,} of {expected:,} bytes", hint=WAIT_HINT)


def _identity(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _copy_once(source: Path, copy: Path) -> bool:
    """Copy the database and its companions; True if none changed meanwhile."""
    paths = [source] + [Path(f"{source}{suffix}") for suffix in COMPANIONS]
    before = [_identity(p) for p in paths]
    for path, ident in zip(paths, before):
        target = Path(f"{copy}{path.name[len(source.name):]}")
        target.unlink(missing_ok=True)
        if ident is not None and not _copy_file(path, target):
            return False
    return before == [_identity(p) for p in paths]


def _copy_file(src: Path, dst: Path) -> bool:
    """Copy one file through a no-atime descriptor; False if it vanished midway."""
    try:
        fd = _open_readonly(src)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise SourceError(f"{src} can't be read: {e.strerror}", hint="check its permissions") from None
    try:
        with open(dst, "wb") as out:
            while True:
                try:
                    sent = os.copy_file_range(fd, out.fileno(), 1 << 24)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    return _copy_by_reading(fd, out)
                if sent == 0:
                    return True
    finally:
        os.close(fd)


def _copy_by_reading(fd: int, out) -> bool:
    os.lseek(fd, out.tell(), os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        out.write(chunk)
    return True


def _check_copy(source: Path, copy: Path) -> None:
    """Open the private copy (recovering its WAL there) and check it is sound."""
    _check_header(source, _read_head(copy, 4096), copy.stat().st_size)
    try:
        db = apsw.Connection(str(copy), flags=apsw.SQLITE_OPEN_READWRITE)
        try:
            result = db.execute("PRAGMA quick_check(1)").fetchall()[0][0]
        finally:
            db.close()
    except (apsw.NotADBError, apsw.CorruptError) as e:
        raise SourceError(f"{source} is damaged or not a database: {_first_line(e)}", hint=WAIT_HINT) from None
    except apsw.Error as e:
        raise SourceError(f"{source} can't be opened as a SQLite database: {_first_line(e)}") from None
    if result != "ok":
        raise SourceError(f"{source} is damaged: {_first_line(result)}", hint=WAIT_HINT)


def _first_line(message) -> str:
    return str(message).strip().splitlines()[0]
