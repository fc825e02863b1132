"""Folder targets: a local disk or a mounted NAS share (SMB, NFS), as a path or `file:///path`.

The folder itself must exist: an unmounted share usually leaves an empty mount
point behind, and silently filling the local disk instead would be worse than
an error.

syncd writes only regular files there, so anything else under an object's name (a
symlink, say to /dev/zero, a FIFO, a device) was put there by someone else: it is
listed, so the error names it, but never opened for reading.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from syncd.backend import ObjectInfo, bounded, too_large
from syncd.errors import AlreadyExists, NotFound, PermanentError, TransientError
from syncd.fsutil import TEMP_SUFFIX, SyncedTogether, atomic_write, fsync_dir, private_dirs, sweep_temps
from syncd.plugins import hookimpl

# A temporary file untouched this long belongs to a write that died: atomic_write touches its
# file with every chunk and renames it seconds after the last. Not sooner, because another
# machine may be writing to the same share (see `_sweep`).
STALE_TEMP_AGE = 15 * 60
# Errors that may clear up by themselves (a share briefly gone, a busy server).
TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE, errno.EIO}
# Not following a symlink, and not waiting for a FIFO's writer: what is opened is then checked.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Why a hard link can't be made where a copy still can: another filesystem, a filesystem without
# links (FAT, some shares), too many links to one file, or a kernel that refuses (protected_hardlinks).
LINK_REFUSED = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


class FolderBackend:
    """Objects as files below a root folder; writes are temp file, fsync, rename, fsync folder."""

    schemes = ("file",)
    syntax = ("/path/to/folder", "file:///path/to/folder")

    def __init__(self, root: Path):
        self.root = Path(root)
        self.location = str(self.root)
        self._swept: set[Path] = set()

    @classmethod
    def from_url(cls, url: str) -> FolderBackend:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise PermanentError(f"file URLs name a local path, not host {parts.netloc!r}",
                                 hint="mount the share and give its path")
        return cls(Path(unquote(parts.path)))

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"invalid object name {name!r}")
        path = self.root / name
        # Whoever else writes to the share could swap a folder for a symlink and take reads and
        # writes out of the target (O_NOFOLLOW guards only the last part of a path).
        for folder in list(path.parents)[: name.count("/")]:
            if folder.is_symlink():
                raise PermanentError(f"target folder {self.root}: {folder.relative_to(self.root)} is a symlink, "
                                     "not a folder", hint="a target's folders must be its own: check the share")
        return path

    def _check_root(self) -> None:
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise NotFound(f"target folder {self.root} {what}", hint="create it, or mount the share it lives on")

    def list(self, prefix: str) -> list[ObjectInfo]:
        self._check_root()
        found = []
        # Walk only the folder the prefix points into.
        start = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        try:
            for folder, _, files in os.walk(start):
                for file in files:
                    if file.startswith("."):
                        continue  # temporary files of writes in progress
                    path = Path(folder, file)
                    name = path.relative_to(self.root).as_posix()
                    if name.startswith(prefix):
                        found.append(ObjectInfo(name, path.lstat().st_size))
        except OSError as e:
            raise _classify(e, self.root) from None
        return sorted(found, key=lambda info: info.name)

    def open(self, name: str, limit: int | None = None) -> BinaryIO:
        self._check_root()
        try:
            fd = os.open(self._path(name), READ_FLAGS)
        except FileNotFoundError:
            raise NotFound(f"{name} is missing from {self.root}") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _not_a_file(self.root, name) from None
            raise _classify(e, self.root) from None
        f = os.fdopen(fd, "rb")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            f.close()
            raise _not_a_file(self.root, name)
        if limit is not None and info.st_size > limit:
            f.close()
            raise too_large(f"target folder {self.root}: {name}", limit)
        return bounded(f, limit, f"target folder {self.root}: {name}")  # it may still grow

    def write(self, name: str, data: BinaryIO) -> None:
        self._check_root()
        path = self._path(name)
        try:
            private_dirs(path.parent)
            atomic_write(path, data)
        except OSError as e:
            raise _classify(e, self.root) from None
        self._sweep(path)

    def link(self, name: str, source: object, source_name: str) -> bool:
        """Store `name` as a hard link of object `source_name` of `source`, another folder: no second
        copy of its bytes on one filesystem. Only for an object that is never rewritten in place
        (syncd replaces files by rename, so the shared file stays as it was). False, with nothing
        written, where a link can't be made (`source` isn't a folder, or LINK_REFUSED): the caller copies.

        As durable as `write`: the source was fsynced when written, the new name is by the folder's fsync.
        """
        if not isinstance(source, FolderBackend):
            return False
        self._check_root()
        original, path = source._path(source_name), self._path(name)
        try:
            if not stat.S_ISREG(original.lstat().st_mode):
                return False  # syncd links only the regular files it wrote
            private_dirs(path.parent)
            temp = path.with_name(f".{path.name}.{os.getpid()}.{id(path)}.link{TEMP_SUFFIX}")
            try:
                os.link(original, temp, follow_symlinks=False)
            except OSError as e:
                if e.errno in LINK_REFUSED:
                    return False
                raise
            try:
                os.replace(temp, path)  # over a damaged object, if any: never into it
            finally:
                temp.unlink(missing_ok=True)  # left by a rename between two names of one file
            fsync_dir(path.parent)
        except OSError as e:
            raise _classify(e, self.root) from None
        self._sweep(path)
        return True

    def batch(self) -> FolderBatch:
        """Writes that are durable and named only once `commit` returns (see syncd.fsutil.SyncedTogether)."""
        return FolderBatch(self)

    def _sweep(self, written: Path) -> None:
        """Once per folder written to: remove the temporary files of writes that died there.

        Age is measured on the share's clock (the file just written has its "now"), so a NAS
        whose clock is off doesn't make a live upload look old.
        """
        if written.parent not in self._swept:
            self._swept.add(written.parent)
            try:
                sweep_temps(written.parent, STALE_TEMP_AGE, now=written.stat().st_mtime)
            except OSError:
                pass  # tidying up never fails a write

    def create(self, name: str, data: BinaryIO) -> None:
        """Write `name` only if it is free: a hard link from a finished temp file fails if the name is taken."""
        self._check_root()
        path = self._path(name)
        try:
            private_dirs(path.parent)
            temp = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}.new{TEMP_SUFFIX}")
            atomic_write(temp, data)
            try:
                os.link(temp, path)
            finally:
                temp.unlink(missing_ok=True)
            fsync_dir(path.parent)
        except FileExistsError:
            raise AlreadyExists(f"{name} already exists in {self.root}") from None
        except OSError as e:
            raise _classify(e, self.root) from None

    def delete(self, name: str) -> None:
        self._check_root()
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as e:
            raise _classify(e, self.root) from None

    def close(self) -> None:
        pass


class FolderBatch:
    """Objects written to a folder target and committed together: `write` as the backend's, but the
    objects are listed (and durable) only once `commit` returned; `discard` drops what wasn't."""

    def __init__(self, backend: FolderBackend):
        self.backend, self.files = backend, SyncedTogether()

    def write(self, name: str, data: BinaryIO) -> None:
        self.backend._check_root()
        path = self.backend._path(name)
        try:
            private_dirs(path.parent)
            self.files.write(path, data)
        except OSError as e:
            raise _classify(e, self.backend.root) from None

    def commit(self) -> None:
        try:
            written = self.files.commit()
        except OSError as e:
            raise _classify(e, self.backend.root) from None
        for path in written:
            self.backend._sweep(path)  # once per folder: what writes that died there left

    def discard(self) -> None:
        self.files.discard()


def _not_a_file(root: Path, name: str) -> PermanentError:
    return PermanentError(f"target folder {root}: {name} is not a regular file (a symlink, FIFO or device)",
                          hint="syncd writes only regular files: someone else put it there; remove it")


def _classify(error: OSError, root: Path) -> Exception:
    message = f"target folder {root}: {error.strerror or error}"
    if error.errno in TRANSIENT_ERRNOS:
        return TransientError(message, hint="is the share mounted and reachable?")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return PermanentError(message, hint="free some space on the target; the version stays queued locally")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermanentError(message, hint="check that syncd may write there (permissions, read-only mount)")
    return PermanentError(message)


@hookimpl
def register_backends():
    return [FolderBackend]
