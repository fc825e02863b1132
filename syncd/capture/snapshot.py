"""A private, consistent copy of the phone's database, kept up to date page by page.

The phone's folder is read, never written: SQLite would create `-shm`/`-wal`
files beside any database it opens (even read-only, in WAL mode), so syncd
keeps a *replica* in its state dir and only ever opens that. Each pass compares
the phone's file with the replica a chunk at a time, rewrites only the pages
that differ, copies the `-wal` beside it and checkpoints it in: the replica is
then a plain SQLite file holding the phone's latest committed state.

Each 64 KiB block's xxh3 digest is kept, so a block the phone didn't change
is recognised without reading the replica's copy of it. (It needn't match the
replica byte for byte: a checkpointed page differs from the phone's file only
while the phone's own -wal still holds it, and that -wal is applied again.)

A pass is accepted only if none of the phone's files changed while it was
read; otherwise it is retried, because archiving a torn copy would record
garbage as a version. The old bytes of every page that may have changed are
kept for the pass, so change detection can compare before and after.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import apsw

from ..errors import SourceError
from ..fsutil import atomic_write, open_untouched, private_dirs, private_opener

SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
WAL_HEADER, WAL_FRAME_HEADER = 32, 24
# Copied together so the database and its not-yet-checkpointed history are of one moment.
COMPANIONS = ("-wal", "-journal")
STABLE_COPY_TRIES = 6
STABLE_COPY_DELAY = 0.25  # seconds, doubled after each torn copy
CHUNK = 1 << 20  # of the phone's file, read by one worker at a time
BLOCK = 64 << 10  # digested and compared at once: index pages of new rows scatter over a file
SCAN_THREADS = 2
# Old page bytes kept for change detection; past this, comparing in full is cheaper anyway.
MAX_PAST_BYTES = 64 << 20
# A header whose first KiB uses this many distinct byte values is noise, not a format.
ENCRYPTED_DISTINCT_BYTES = 200

REPLICA = "replica.db"
CHUNK_DIGESTS = "replica.xxh3"  # xxh3-128 of each block of the phone's file, as last archived
DIGEST_SIZE = 16
DIRTY = "replica.dirty"  # present while the replica is ahead of the last archived version
IDENTITY = "source.json"  # the phone's files as last archived
SIGNATURE = "source.signature"  # the source kind's signature of the database as last archived

WAIT_HINT = "a sync tool may still be copying it; syncd will try again on the next pass"


@dataclass
class Snapshot:
    """The replica after a pass, and what is known about how it changed."""

    source: Path
    path: Path  # the replica: a plain SQLite file at the source's latest committed state
    unchanged: bool  # the phone's files are byte for byte as when last archived (not even read)
    # Old bytes of every page that may have changed since the last archived version, and the
    # page count then; None when that state is unknown or too much changed (see `why_full`).
    past: dict[int, bytes] | None
    past_page_count: int
    why_full: str | None = None
    # What the phone's files were (inode, size, times) and their block digests when read:
    # saved when the pass is settled, so a change made after the read is never taken as seen.
    identity: list | None = None
    digests: bytes = b""


class SnapshotStore:
    """The replica of one source, in `folder` of the state dir."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.replica = self.folder / REPLICA
        self.dirty = self.folder / DIRTY
        self.identity_file = self.folder / IDENTITY
        self.digest_file = self.folder / CHUNK_DIGESTS
        self.signature_file = self.folder / SIGNATURE

    def untouched(self, signature: str) -> bool:
        """Whether the source kind's `signature` vouches the database is as last archived: then it
        isn't read (nor decrypted) at all."""
        if not signature or not self.replica.exists() or self.dirty.exists():
            return False
        try:
            return self.signature_file.read_text() == signature
        except (FileNotFoundError, UnicodeDecodeError):
            return False

    def take(self, source: Path, *, companions: Mapping[str, Path] | None = None,
             reread: bool = False) -> Snapshot:
        """Bring the replica up to `source`; raise SourceError for anything that isn't a sound database.

        `companions` name its -wal and -journal where they aren't beside it (an iOS backup
        keeps each under a hashed name). `reread` reads the phone's file even when it looks
        untouched since last archived."""
        source = Path(source)
        companions = companions_of(source, companions)
        _check_source_path(source)
        _check_header(source, _read_head(source, 4096), source.stat().st_size)
        trusted = self.replica.exists() and not self.dirty.exists()
        saved = self._saved_identity() if trusted else None
        if saved is not None and not reread and saved == file_identity(source, companions):
            return Snapshot(source, self.replica, True, {}, 0)
        private_dirs(self.folder)
        atomic_write(self.dirty, b"")
        why_full = None if trusted else ("the first pass" if not self.replica.exists() else "an earlier pass was interrupted")
        past: dict[int, bytes] | None = {} if trusted else None
        past_pages = 0
        if trusted:
            replica_page = _page_size(self.replica)
            past_pages = self.replica.stat().st_size // replica_page
            if replica_page != _page_size(source):
                past, why_full = None, "the page size changed"
        digests = self._saved_digests() if trusted else b""
        delay = STABLE_COPY_DELAY
        for _ in range(STABLE_COPY_TRIES):
            before = file_identity(source, companions)
            # A WAL database's file only changes when the app checkpoints; until then every
            # commit lands in the -wal alone, and only that needs reading.
            if not (saved and saved[:2] == before[:2]):
                past, digests = self._patch(source, past, digests)
            journal = self._copy_companions(companions)
            if file_identity(source, companions) == before:
                break
            time.sleep(delay)
            delay *= 2
        else:
            raise SourceError(f"{source} kept changing while it was being read", hint=WAIT_HINT)
        if journal and past is not None:
            # Rolling back a hot journal rewrites pages this pass doesn't track.
            past, why_full = None, "the phone's app was in the middle of a write"
        if past is not None:
            past = self._keep_past(self._wal_pages(), past, past_pages)
        if past is None and why_full is None:
            why_full = "more than could be compared page by page changed"
        self._checkpoint(source)
        return Snapshot(source, self.replica, False, past, past_pages, why_full, before, digests)

    def settle(self, snapshot: Snapshot, signature: str = "") -> None:
        """The replica's state is archived: remember the source's files (and the kind's signature
        of them, taken before they were read) and trust the replica."""
        if not snapshot.unchanged:
            atomic_write(self.digest_file, snapshot.digests)
            atomic_write(self.identity_file, json.dumps(snapshot.identity).encode())
        if signature:
            atomic_write(self.signature_file, signature.encode())
        self.dirty.unlink(missing_ok=True)

    def _saved_identity(self):
        try:
            return json.loads(self.identity_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _saved_digests(self) -> bytes:
        try:
            return self.digest_file.read_bytes()
        except FileNotFoundError:
            return b""

    def _patch(self, source: Path, past: dict[int, bytes] | None,
               digests: bytes) -> tuple[dict[int, bytes] | None, bytes]:
        """Rewrite the replica's pages that differ from the source's; keep their old bytes in `past`.

        `digests` are the source's chunk digests as last seen: an unchanged block is skipped
        without reading the replica. Returns `past` and the source's digests now.
        """
        page = _page_size(source)
        src = open_untouched(source)
        try:
            rep = os.open(self.replica, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            os.close(src)
            raise
        try:
            size, old_size = os.fstat(src).st_size, os.fstat(rep).st_size
            scan = _Scan(src, rep, digests, old_size if past is not None else 0)
            kept = sum(map(len, past.values())) if past else 0
            seen = []
            # Reading and digesting the file is most of a pass: two threads share it (the
            # copying and hashing release the GIL), and the rare changed block is patched here.
            from concurrent.futures import ThreadPoolExecutor  # a pass with nothing new never reads

            pool = ThreadPoolExecutor(SCAN_THREADS)
            try:
                for found, changed in pool.map(scan, range(0, size, CHUNK)):
                    seen += found
                    for where in changed:
                        if past is None:
                            os.pwrite(rep, os.pread(src, BLOCK, where), where)
                            continue
                        kept += _patch_pages(src, rep, where, page, past, old_size)
                        if kept > MAX_PAST_BYTES:
                            past = None
            finally:
                # After an error, the chunks not yet read are dropped rather than read for nothing.
                pool.shutdown(cancel_futures=True)
            if size < old_size and past is not None:
                # Pages cut off the end changed too (auto_vacuum, or an older copy put back).
                kept += _keep_cut_pages(rep, size, old_size, page, past)
                if kept > MAX_PAST_BYTES:
                    past = None
            if old_size != size:
                os.ftruncate(rep, size)
        finally:
            os.close(src)
            os.close(rep)
        return past, b"".join(seen)

    def _copy_companions(self, companions: Mapping[str, Path]) -> bool:
        """Copy the -wal (and a hot -journal) beside the replica; True if there was a journal."""
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{self.replica}{suffix}").unlink(missing_ok=True)
        journal = False
        for suffix in COMPANIONS:
            if _copy_file(companions[suffix], Path(f"{self.replica}{suffix}")):
                journal |= suffix == "-journal"
        return journal

    def _wal_pages(self) -> set[int]:
        """Pages the copied -wal may hold (every frame of its current generation: a superset)."""
        wal = Path(f"{self.replica}-wal")
        if not wal.exists():
            return set()
        with open(wal, "rb") as f:
            header = f.read(WAL_HEADER)
            if len(header) < WAL_HEADER:
                return set()
            page, salts = int.from_bytes(header[8:12], "big"), header[16:24]
            pages, offset = set(), WAL_HEADER
            while True:
                f.seek(offset)
                frame = f.read(WAL_FRAME_HEADER)
                if len(frame) < WAL_FRAME_HEADER or frame[8:16] != salts:
                    return pages
                pages.add(int.from_bytes(frame[0:4], "big"))
                offset += WAL_FRAME_HEADER + page

    def _keep_past(self, pages: set[int], past: dict[int, bytes], past_pages: int) -> dict[int, bytes] | None:
        """Add the pre-checkpoint bytes of pages the -wal will overwrite."""
        if not pages:
            return past
        page = _page_size(self.replica)
        if (len(past) + len(pages)) * page > MAX_PAST_BYTES:
            return None
        with open(self.replica, "rb") as f:
            for number in pages - past.keys():
                if number <= past_pages:
                    f.seek((number - 1) * page)
                    past[number] = f.read(page)
        return past

    def _checkpoint(self, source: Path) -> None:
        """Fold the copied -wal (or roll back a hot journal) into the replica.

        Damage is found where it matters, when the rows are read (see `sync.record_version`):
        a whole-file integrity check would cost as much as the rest of an incremental pass.
        """
        try:
            db = apsw.Connection(str(self.replica), flags=apsw.SQLITE_OPEN_READWRITE)
            try:
                # An interrupted pass leaves the replica untrusted anyway: nothing here needs fsync.
                db.execute("PRAGMA synchronous=OFF")
                db.execute("PRAGMA schema_version").fetchall()
                if db.execute("PRAGMA journal_mode").fetchall()[0][0] == "wal":
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                db.close()
        except (apsw.NotADBError, apsw.CorruptError) as e:
            raise SourceError(f"{source} is damaged or not a database: {_first_line(e)}", hint=WAIT_HINT) from None
        except apsw.Error as e:
            raise SourceError(f"{source} can't be opened as a SQLite database: {_first_line(e)}") from None


def _patch_pages(src: int, rep: int, where: int, page: int, past: dict[int, bytes], old_size: int) -> int:
    """Rewrite the pages of one changed block that differ, keeping their old bytes in `past`;
    return how many bytes that added to `past`."""
    new, old = os.pread(src, BLOCK, where), os.pread(rep, BLOCK, where)
    kept = 0
    for at in range(0, len(new), page):
        if new[at:at + page] != old[at:at + page]:
            number = (where + at) // page + 1
            if number not in past and where + at < old_size:
                past[number] = old[at:at + page]
                kept += page
            os.pwrite(rep, new[at:at + page], where + at)
    return kept


def _keep_cut_pages(rep: int, size: int, old_size: int, page: int, past: dict[int, bytes]) -> int:
    """Keep the old bytes of the replica's pages past `size`; return how many bytes that added."""
    kept = 0
    for number in range(size // page + 1, old_size // page + 1):
        if number not in past:
            past[number] = os.pread(rep, page, (number - 1) * page)
            kept += page
    return kept


class _Scan:
    """One chunk of a pass, run on a worker thread: read it a block at a time, digest each block,
    and say which blocks differ from the digests last seen. Blocks with nothing to compare
    against (past the replica's end, or every block when there are no old page bytes to keep)
    are written to the replica here and then."""

    def __init__(self, src: int, rep: int, digests: bytes, compared_up_to: int):
        import xxhash  # here, not at the top: a pass that finds the source untouched never scans

        self.src, self.rep, self.digests, self.compared_up_to = src, rep, digests, compared_up_to
        self.digest_of = xxhash.xxh3_128_digest
        # One block-sized buffer per thread, reused: allocating per read cost more than reading,
        # and a buffer that stays in the CPU's cache while it is digested reads the file about
        # three times as fast as one the size of a chunk (measured: 40 vs 130 ms for 274 MiB).
        self.local = threading.local()

    def __call__(self, offset: int) -> tuple[list[bytes], list[int]]:
        buffer = getattr(self.local, "buffer", None)
        if buffer is None:
            buffer = self.local.buffer = bytearray(BLOCK)
        found, changed = [], []
        for where in range(offset, offset + CHUNK, BLOCK):
            block = memoryview(buffer)[:os.preadv(self.src, [buffer], where)]
            if not block:
                break
            digest = self.digest_of(block)
            found.append(digest)
            first = where // BLOCK * DIGEST_SIZE
            if self.digests[first:first + DIGEST_SIZE] != digest:
                if where >= self.compared_up_to:
                    os.pwrite(self.rep, block, where)  # new: nothing to compare with
                else:
                    # The patching thread reads this block's old bytes soon: have the disk start now,
                    # so a replica out of the page cache costs one wait, not one per changed block.
                    os.posix_fadvise(self.rep, where, BLOCK, os.POSIX_FADV_WILLNEED)
                    changed.append(where)
            if len(block) < BLOCK:
                break
        return found, changed


def _page_size(path: Path) -> int:
    size = int.from_bytes(_read_head(path, HEADER_SIZE)[16:18], "big")
    return 65536 if size == 1 else size


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


def _read_head(path: Path, n: int) -> bytes:
    try:
        fd = open_untouched(path)
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


def companions_of(source: Path, given: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """Where the -wal and -journal of `source` are: as `given`, else beside it under the usual names."""
    return {suffix: Path((given or {}).get(suffix) or f"{source}{suffix}") for suffix in COMPANIONS}


def file_identity(source: Path, companions: Mapping[str, Path] | None = None) -> list:
    """What changes whenever the database or a companion is written, renamed over or removed:
    inode, size, mtime and ctime of each (None for one that is missing or can't be looked at)."""
    ident = [str(source)]
    for path in [Path(source), *companions_of(source, companions).values()]:
        try:
            st = path.stat()
            ident.append([st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        except OSError:
            ident.append(None)
    return ident


def _copy_file(src: Path, dst: Path) -> bool:
    """Copy one file through a no-atime descriptor; False if there is none."""
    try:
        fd = open_untouched(src)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise SourceError(f"{src} can't be read: {e.strerror}", hint="check its permissions") from None
    try:
        with open(dst, "wb", opener=private_opener) as out:  # the phone's latest messages
            while chunk := os.read(fd, CHUNK):
                out.write(chunk)
        return True
    finally:
        os.close(fd)


def _first_line(message) -> str:
    return str(message).strip().splitlines()[0]
