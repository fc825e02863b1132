"""Manifest.db: the backup's list of files, read from a private plain copy.

The backup's own Manifest.db is never opened by SQLite (that could leave a
`-shm` beside it or change its access time): it is copied (or, in an encrypted
backup, decrypted) into the kind's private work folder, and the copy is kept
with a record of what the backup's files looked like (inode, size, times). An
unchanged backup reuses its copy: no read, no decryption, no password.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import apsw

from syncd.errors import SourceError
from syncd.fsutil import atomic_write, private_opener

from .apps import Row, query
from .decrypt import decrypt_file
from .reading import open_in_backup
from .plists import file_record

MANIFEST_DB = "Manifest.db"
MANIFEST_FILES = (MANIFEST_DB, f"{MANIFEST_DB}-wal", "Manifest.plist")  # what a change of the list touches
MANIFEST_DB_MAX_BYTES = 8 << 30
COPY_CHUNK = 1 << 20
MAX_CHAT_ROWS = 10_000  # rows of chat databases and companions; a few dozen in a real backup
MAX_TEXT = 4096  # characters of a domain or a relative path
BLOB_LIMIT = 64 << 10
FILE_ID = re.compile(r"[0-9a-f]{40}")
MARKS = "manifest.marks"
DAMAGED = "the backup may be damaged; make a new one"


def marks(folder: Path) -> list:
    """What the backup's list files look like now: changes whenever one is written or replaced."""
    found = []
    for name in MANIFEST_FILES:
        try:
            st = os.stat(folder / name, follow_symlinks=False)
        except FileNotFoundError:
            found.append(None)
            continue
        except OSError as e:
            raise SourceError(f"{folder / name} can't be read: {e.strerror}", hint="check its permissions") from None
        found.append([st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode])
    return found


def private_manifest(folder: Path, workdir: Path, manifest_key: Callable[[], bytes] | None) -> Path:
    """A plain copy of `folder`'s Manifest.db in `workdir`, made anew only if the backup changed.

    `manifest_key` gives Manifest.db's key in an encrypted backup (None in a plain one); it is
    called only when the copy must be made.
    """
    copy, record = workdir / MANIFEST_DB, workdir / MARKS
    before = marks(folder)
    if before[0] is None:
        raise SourceError(f"{folder} has no Manifest.db", hint="is this a complete iOS backup folder?")
    try:
        if copy.is_file() and json.loads(record.read_text()) == before:
            return copy
    except (OSError, ValueError):
        pass
    record.unlink(missing_ok=True)
    for stale in (copy, workdir / f"{MANIFEST_DB}-wal", workdir / f"{MANIFEST_DB}-shm"):
        stale.unlink(missing_ok=True)
    if manifest_key is None:
        for name in (MANIFEST_DB, f"{MANIFEST_DB}-wal"):
            _copy(folder / name, workdir / name)
    else:
        decrypt_file(folder / MANIFEST_DB, manifest_key(), None, copy, "Manifest.db", limit=MANIFEST_DB_MAX_BYTES)
    if marks(folder) != before:
        raise SourceError(f"{folder} changed while it was read", hint="a backup is running; syncd tries again later")
    atomic_write(record, json.dumps(before).encode())
    return copy


def _copy(src: Path, dst: Path) -> None:
    """Copy a file of the backup, bounded, without following a symlink or touching its access time."""
    if not os.path.lexists(src):
        return
    fd = open_in_backup(src)
    try:
        copied = 0
        with open(dst, "wb", opener=private_opener) as out:
            while chunk := os.read(fd, COPY_CHUNK):
                copied += len(chunk)
                if copied > MANIFEST_DB_MAX_BYTES:
                    raise SourceError(f"{src} is larger than {MANIFEST_DB_MAX_BYTES:,} bytes", hint=DAMAGED)
                out.write(chunk)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def chat_rows(copy: Path) -> list[Row]:
    """The `Files` rows of chat databases and their companions, each checked."""
    where, bindings = query()
    return _select(copy, where, bindings, MAX_CHAT_ROWS, "chat database files")


def _select(copy: Path, where: str, bindings: tuple, most: int, what: str) -> list[Row]:
    """The plain files among the rows of `Files` matching `where`, each checked."""
    found, count = [], 0
    for row in _rows(copy, f"{where} LIMIT ?", bindings + (most + 1,)):
        count += 1
        if row is not None:
            found.append(row)
    if count > most:
        raise SourceError(f"Manifest.db lists more than {most:,} {what}", hint=DAMAGED)
    return found


def _rows(copy: Path, where: str, bindings: tuple) -> Iterator[Row | None]:
    """The rows of `Files` matching `where` (None for a folder or a symlink), each checked as it is read."""
    try:
        db = apsw.Connection(str(copy))
    except apsw.Error as e:
        raise SourceError(f"Manifest.db can't be opened: {e}", hint=DAMAGED) from None
    try:
        db.execute("PRAGMA trusted_schema = OFF")
        db.execute("PRAGMA cell_size_check = ON")
        kind = db.execute("SELECT type FROM sqlite_schema WHERE name = 'Files'").fetchall()
        if kind != [("table",)]:
            raise SourceError("Manifest.db has no Files table", hint=DAMAGED)
        for values in db.execute(
                "SELECT fileID, domain, relativePath, flags, CASE WHEN length(file) <= ? THEN file END "
                f"FROM Files WHERE {where}", (BLOB_LIMIT,) + bindings):
            yield _checked(values)
    except apsw.NotADBError:
        raise SourceError("Manifest.db is not a database (a wrong key, or damage)", hint=DAMAGED) from None
    except apsw.Error as e:
        raise SourceError(f"Manifest.db can't be read: {type(e).__name__}", hint=DAMAGED) from None
    finally:
        db.close()


def media_rows(copy: Path, places: list[tuple[str, str]]) -> Iterator[Row]:
    """The `Files` rows of plain files under the (domain, relativePath prefix) `places`, each checked,
    streamed in relativePath order (an app's media is 100,000 files and more: none is held)."""
    if not places:
        return
    where = " OR ".join("(domain = ? AND substr(relativePath, 1, ?) = ?)" for _ in places)
    bindings = tuple(v for domain, prefix in places for v in (domain, len(prefix), prefix))
    for row in _rows(copy, f"flags = 1 AND ({where}) ORDER BY relativePath, domain", bindings):
        if row is not None:
            yield row


def _checked(values: tuple) -> Row | None:
    """A row as a Row, or None for a folder or a symlink; SourceError if it is damaged or hostile."""
    file_id, domain, path, flags, blob = values
    if not (isinstance(domain, str) and isinstance(path, str) and len(domain) <= MAX_TEXT >= len(path)):
        raise SourceError("Manifest.db has a row with an unreadable domain or path", hint=DAMAGED)
    if flags != 1:  # 2 is a folder, 4 a symlink: neither is a database
        return None
    # The fileID names the file on disk: it must be the hash of its place, so no row can
    # point at another file, let alone outside the backup.
    if not isinstance(file_id, str) or not FILE_ID.fullmatch(file_id) \
            or hashlib.sha1(f"{domain}-{path}".encode("utf-8", "surrogatepass")).hexdigest() != file_id:
        raise SourceError(f"Manifest.db's row for {domain} {path} has a fileID that is not its hash", hint=DAMAGED)
    try:
        record = file_record(blob)
    except ValueError as e:
        raise SourceError(f"Manifest.db's record of {domain} {path} is damaged: {e}", hint=DAMAGED) from None
    return Row(file_id, domain, path, record)
