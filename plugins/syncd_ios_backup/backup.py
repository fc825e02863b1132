"""One backup folder (one device): its state, its chat databases, and their plain files.

What is slow is done once and kept: the password's key derivation (10 M
PBKDF2 rounds) once per object, Manifest.db's copy once per change of the
backup, each database's decryption only when its record changed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

from syncd.errors import SourceError
from syncd.fsutil import private_dirs
from syncd.source import SourceMedia, media_mark

from .apps import ChatFile, Row, chat_files, media_places
from .decrypt import decrypt_file
from .keybag import class_keys, parse_keybag, unwrap_file_key
from .manifest import MANIFEST_DB, chat_rows, marks, media_rows, private_manifest
from .reading import open_in_backup
from .plists import FINISHED, DeviceInfo, Encryption, device_info, encryption, snapshot_state

DAMAGED = "the backup may be damaged; make a new one"
OPENED = "opened"  # where decrypted databases go, inside the device's work folder
MEDIA_OPENED = "media-opened"  # where a media file is decrypted, to be read once and gone when closed


class Backup:
    """A finished backup folder of one device, read through a private work folder."""

    def __init__(self, folder: Path, workdir: Path, password: Callable[[], str]):
        self.folder, self.workdir, self._password = folder, workdir, password
        self._seen: list | None = None  # marks of the list files when `_chats` was read
        self._chats: list[ChatFile] = []
        self._encryption: Encryption | None = None
        self._keys: dict[int, bytes] | None = None
        self._keybag_of_keys: bytes | None = None  # which keybag `_keys` came from
        self._info: DeviceInfo | None = None

    def state(self) -> str | None:
        return snapshot_state(self.folder) if (self.folder / "Status.plist").exists() else None

    def info(self) -> DeviceInfo:
        if self._info is None:
            self._info = device_info(self.folder)
        return self._info

    @property
    def encrypted(self) -> bool:
        return self._encryption is not None

    def chats(self) -> list[ChatFile]:
        """The chat databases the backup lists now (re-read only when its list files changed)."""
        now = marks(self.folder)
        if now == self._seen:
            return self._chats
        if self._seen is None or now[2] != self._seen[2]:
            self._encryption = encryption(self.folder)  # Manifest.plist: megabytes, read on change only
        if self._encryption is not None:
            self._password()  # an encrypted backup needs its password file, even on a pass that derives nothing
        private_dirs(self.workdir)
        copy = private_manifest(self.folder, self.workdir, self._manifest_key if self.encrypted else None)
        self._chats, self._seen = chat_files(chat_rows(copy)), now
        return self._chats

    def media(self, chat: ChatFile) -> Iterator[SourceMedia]:
        """The media files the backup holds for `chat`'s app, from its own records (Manifest.db), in
        path order: an unchanged record is an unchanged file, so nothing is read or decrypted to tell.
        They stream from the private copy of Manifest.db as they are asked for: none is held."""
        places = media_places(chat)
        if not places:
            return
        self.chats()  # the list files as they are now
        for row in media_rows(self.workdir / MANIFEST_DB, places):
            yield self._media_file(row)

    def _media_file(self, row: Row) -> SourceMedia:
        r = row.record
        return SourceMedia(row.relative_path, r.size, r.mtime * 1_000_000_000,
                           media_mark(row.file_id, r.size, r.mtime, r.protection_class, r.wrapped_key),
                           partial(self.open_media, row))

    def open_media(self, row: Row) -> BinaryIO:
        """A media file's plain bytes: the backup's own file, or one decrypted into the private work
        folder and unlinked at once (its bytes live on disk only while the stream is open)."""
        what = f"{row.domain} {row.relative_path}"
        if self._stat(row, required=False) is None:
            raise FileNotFoundError(errno.ENOENT, "listed but not in the backup", what)
        if not self.encrypted:
            return os.fdopen(open_in_backup(self.stored(row)), "rb")
        if row.record.wrapped_key is None:
            if row.record.size:
                raise SourceError(f"{what} has no key in an encrypted backup", hint=DAMAGED)
            return io.BytesIO(b"")
        folder = self.workdir / MEDIA_OPENED
        private_dirs(folder)
        key = unwrap_file_key(self._class_keys(), row.record.protection_class, row.record.wrapped_key, what)
        out = folder / row.file_id
        decrypt_file(self.stored(row), key, row.record.size, out, what)
        try:
            return open(out, "rb")
        finally:
            out.unlink()

    def signature(self, chat: ChatFile) -> str:
        """The backup's own record of the database and its companions, and their files' sizes and times."""
        parts = []
        for suffix, row in [("", chat.row)] + sorted(chat.companions.items()):
            record = row.record
            on_disk = self._stat(row, required=not suffix)
            parts.append([suffix, row.file_id, record.size, record.mtime, record.protection_class,
                          (record.wrapped_key or b"").hex(), on_disk])
        return hashlib.sha256(json.dumps([self.encrypted, parts]).encode()).hexdigest()[:32]

    def stored(self, row: Row) -> Path:
        """Where the backup keeps a row's file: `<fileID[:2]>/<fileID>` (the fileID was checked to be 40 hex)."""
        return self.folder / row.file_id[:2] / row.file_id

    def companions(self, chat: ChatFile) -> dict[str, Path]:
        """A plain backup's companion files, as they sit in the backup."""
        return {suffix: self.stored(row) for suffix, row in chat.companions.items() if self._stat(row, False)}

    def _stat(self, row: Row, required: bool) -> list | None:
        """Size and times of a row's file, after checking it is a plain file in a plain folder."""
        shard, path = self.folder / row.file_id[:2], self.stored(row)
        try:
            if not stat.S_ISDIR(os.lstat(shard).st_mode):
                raise SourceError(f"{shard} is not a folder (a symlink?)", hint=DAMAGED)
            st = os.lstat(path)
        except FileNotFoundError:
            if required:
                raise SourceError(f"the backup lists {row.domain} {row.relative_path} but holds no file {row.file_id}",
                                  hint=DAMAGED) from None
            return None
        except OSError as e:
            raise SourceError(f"{path} can't be read: {e.strerror}", hint="check its permissions") from None
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{path} is not a plain file (a symlink?)", hint=DAMAGED)
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def decrypt(self, chat: ChatFile, folder: Path) -> Path:
        """Decrypt the database and its companions into `folder`; the database's path there."""
        private_dirs(folder)
        out = folder / "db.sqlite"
        for suffix in ("-wal", "-journal", "-shm"):
            Path(f"{out}{suffix}").unlink(missing_ok=True)
        keys = self._class_keys()
        for suffix, row in [("", chat.row)] + sorted(chat.companions.items()):
            if suffix and self._stat(row, required=False) is None:
                continue
            what = f"{row.domain} {row.relative_path}"
            target = Path(f"{out}{suffix}")
            if row.record.wrapped_key is None:
                if row.record.size:
                    raise SourceError(f"{what} has no key in an encrypted backup", hint=DAMAGED)
                target.touch(mode=0o600)
                continue
            key = unwrap_file_key(keys, row.record.protection_class, row.record.wrapped_key, what)
            decrypt_file(self.stored(row), key, row.record.size, target, what)
        return out

    def forget_opened(self) -> None:
        """Remove the decrypted databases and any media a crash left (the plain list copy stays: it
        spares the next pass a decryption)."""
        shutil.rmtree(self.workdir / OPENED, ignore_errors=True)
        shutil.rmtree(self.workdir / MEDIA_OPENED, ignore_errors=True)

    def _class_keys(self) -> dict[int, bytes]:
        """The keybag's class keys: derived from the password once per object (and per keybag)."""
        assert self._encryption is not None
        if self._keys is None or self._keybag_of_keys != self._encryption.keybag:
            self._keys = class_keys(parse_keybag(self._encryption.keybag), self._password())
            self._keybag_of_keys = self._encryption.keybag
        return self._keys

    def _manifest_key(self) -> bytes:
        assert self._encryption is not None
        return unwrap_file_key(self._class_keys(), self._encryption.manifest_class,
                               self._encryption.wrapped_manifest_key, "Manifest.db")


def require_finished(backup: Backup) -> None:
    state = backup.state()
    if state != FINISHED:
        said = f"says {state!r}" if state else "is missing"
        raise SourceError(f"{backup.folder} is not a finished backup (its Status.plist {said})",
                          hint="syncd reads a backup once it has finished; run it again then")
