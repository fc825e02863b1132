"""The `ios-backup` source kind: a backup folder, or a folder of them, as chat databases."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from syncd.errors import SourceError
from syncd.log import get_logger
from syncd.source import Database, Place, SourceMedia, SourceOptions

if TYPE_CHECKING:  # the reading itself is imported on use: every syncd command loads this plugin
    from .apps import ChatFile
    from .backup import Backup

# A backup ends by writing these: when they hold still, it is finished (or has failed).
BACKUP_RECORDS = ("Manifest.db", "Manifest.plist", "Status.plist")
MAX_CHILDREN = 1024  # entries of a parent folder looked at for device backups
DEVICE_PART_MAX = 64
log = get_logger(__name__)


class IOSBackup:
    """An iOS backup (Finder, iTunes, idevicebackup2), plain or encrypted, or a folder of them."""

    kind: ClassVar[str] = "ios-backup"
    summary: ClassVar[str] = "an iOS backup folder (plain or encrypted) or a folder of them: each chat app's databases"
    priority: ClassVar[int] = 10

    def __init__(self, path: Path, options: SourceOptions, workdir: Path):
        self.path, self.options, self.workdir = Path(path), options, Path(workdir)
        self._backups: dict[Path, Backup] = {}
        self._listed: dict[str, tuple[Backup, ChatFile]] = {}

    @classmethod
    def places(cls, home: Path) -> list[Place]:
        """Where Finder and iTunes keep backups (every device's folder under one): macOS, Windows'
        iTunes, and the Microsoft Store's iTunes."""
        return [Place(home / folder / "MobileSync" / "Backup", "iphone-backups", None) for folder in
                ("Library/Application Support", "AppData/Roaming/Apple Computer", "Apple")]

    @classmethod
    def recognises(cls, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and (is_backup(path) or any(is_backup(child) for child in _children(path)))

    def databases(self) -> list[Database]:
        found, listed = [], {}
        for prefix, backup in self._named(self._finished()):
            for chat in backup.chats():
                name = f"{prefix}.{chat.part}"
                plain = not backup.encrypted
                found.append(Database(
                    name=name, signature=backup.signature(chat), app=chat.app,
                    path=backup.stored(chat.row) if plain else None,
                    companions=backup.companions(chat) if plain else {},
                    origin={"kind": self.kind, "domain": chat.row.domain, "path": chat.row.relative_path}))
                listed[name] = (backup, chat)
        self._listed = listed
        return found

    def materialise(self, db: Database) -> Path:
        from .backup import OPENED

        if db.path is not None:
            return db.path
        if db.name not in self._listed:
            raise SourceError(f"{db.name} is not in {self.path} any more", hint="run it again")
        backup, chat = self._listed[db.name]
        return backup.decrypt(chat, backup.workdir / OPENED / db.name)

    def media(self, db: Database) -> Iterator[SourceMedia]:
        """The app's media files in the backup (iMessage attachments, WhatsApp's Message/Media,
        WeChat's Img, Audio and Video with the account's MM.sqlite), listed from Manifest.db."""
        if db.name not in self._listed:
            raise SourceError(f"{db.name} is not in {self.path} any more", hint="run it again")
        backup, chat = self._listed[db.name]
        return backup.media(chat)

    def watched(self) -> list[Path]:
        """What a backup rewrites when it ends (its list of files, its status), and a parent folder
        itself, where a new device's backup appears: the daemon waits for these to hold still,
        so the thousands of files a backup writes are one pass."""
        folders = [self.path] if is_backup(self.path) else [child for child in _children(self.path)
                                                            if is_backup(child)]
        files = [folder / name for folder in folders for name in BACKUP_RECORDS]
        return files if is_backup(self.path) else [self.path, *files]

    def close(self) -> None:
        for backup in self._backups.values():
            backup.forget_opened()

    def _finished(self) -> list[Backup]:
        """The finished backups at the path: itself, or the devices' folders under it."""
        from .backup import require_finished

        if is_backup(self.path):
            backup = self._backup(self.path)
            require_finished(backup)
            return [backup]
        folders = [child for child in _children(self.path) if is_backup(child)]
        if not folders:
            raise SourceError(f"{self.path} holds no iOS backup", hint="give the folder holding Manifest.db, or its parent")
        finished, refusal = [], None
        for folder in sorted(folders):
            backup = self._backup(folder)
            try:
                require_finished(backup)
                finished.append(backup)
            except SourceError as e:  # another device's backup may be under way: the rest are read
                log.warning("%s", e)
                refusal = refusal or e
        if not finished:
            raise refusal
        return finished

    def _backup(self, folder: Path) -> Backup:
        from .backup import Backup

        if folder not in self._backups:
            # One private folder per device, named after its path (not its untrusted contents).
            key = hashlib.sha256(os.fsencode(folder.absolute())).hexdigest()[:16]
            self._backups[folder] = Backup(folder, self.workdir / key, self.options.password)
        return self._backups[folder]

    def _named(self, backups: list[Backup]) -> list[tuple[str, Backup]]:
        """Each backup with its name prefix: the user's name or the device's, told apart where alike."""
        prefixes = [self._prefix(backup) for backup in backups]
        return [(prefix if prefixes.count(prefix) == 1 else f"{prefix}-{slug(backup.folder.name)[:8]}", backup)
                for prefix, backup in zip(prefixes, backups)]

    def _prefix(self, backup: Backup) -> str:
        if self.options.name:
            given = re.sub(r"[^A-Za-z0-9._-]", "-", self.options.name).lstrip("._-")[:DEVICE_PART_MAX]
            if given:
                return given
        info = backup.info()
        return slug(info.name or "") or f"iphone-{slug(info.udid or backup.folder.name)[:8] or 'backup'}"


def is_backup(folder: Path) -> bool:
    """Cheap: a folder holding Manifest.db and one of the plists a backup has."""
    try:
        return (folder / "Manifest.db").is_file() and any((folder / name).is_file() for name in BACKUP_RECORDS[1:]
                                                          + ("Info.plist",))
    except OSError:
        return False


def slug(text: str) -> str:
    """"Ann's iPhone" → "anns-iphone": lower case letters and digits between single dashes."""
    text = re.sub(r"['’`]", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:DEVICE_PART_MAX].strip("-")


def _children(path: Path) -> list[Path]:
    """Up to MAX_CHILDREN real folders inside `path` (no symlinks: a backup never holds one there)."""
    found = []
    try:
        with os.scandir(path) as entries:
            for n, entry in enumerate(entries):
                if n >= MAX_CHILDREN:
                    break
                if entry.is_dir(follow_symlinks=False):
                    found.append(Path(entry.path))
    except OSError:
        return []
    return found
