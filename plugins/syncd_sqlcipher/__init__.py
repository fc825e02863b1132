"""SQLCipher sources: WeChat Android's EnMicroMsg.db, Signal Desktop, any SQLCipher file with its key.

The encrypted file (and its -wal/-journal) is copied privately into the work dir and decrypted
there into a plain SQLite file; nothing in the user's folder is opened by SQLite. The key comes
from the key file, else from Signal's config.json, else (WeChat) from the `imei` and `uin`
settings as md5(IMEI + uin)[:7]. See docs/sources.md, "SQLCipher (WeChat, Signal Desktop)".
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.errors import KeyProblem, SourceError
from syncd.fsutil import copy_untouched, open_untouched, private_dirs
from syncd.plugins import hookimpl
from syncd.source import Database, Place, SourceOptions, stat_signature

from . import apps

if TYPE_CHECKING:  # the cipher settings are imported on use: every syncd command asks this kind
    from .cipher import CipherSettings

SQLITE_MAGIC = b"SQLite format 3\x00"
HEAD_BYTES = 1024
# Encrypted pages are noise: a first KiB using this many distinct byte values is no format's header.
NOISE_DISTINCT_BYTES = 200
MIN_PAGE = 512
COMPANIONS = ("-wal", "-journal")
STABLE_COPY_TRIES = 5
STABLE_COPY_DELAY = 0.2  # seconds, doubled after each copy the app changed under us
WAIT_HINT = "the app (or a sync tool) may still be writing it; syncd will try again on the next pass"
NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def looks_encrypted(path: Path) -> bool:
    """A file whose first KiB is noise and whose size is a whole number of pages."""
    try:
        fd = open_untouched(path)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, HEAD_BYTES, 0)
    finally:
        os.close(fd)
    return (size >= HEAD_BYTES and size % MIN_PAGE == 0 and not head.startswith(SQLITE_MAGIC)
            and len(set(head)) >= NOISE_DISTINCT_BYTES)


class SQLCipherSource:
    """One SQLCipher database, decrypted into the work dir whenever it changed."""

    kind = "sqlcipher"
    summary = "SQLCipher databases: WeChat Android EnMicroMsg.db, Signal Desktop, any with its key"
    priority = 40

    @classmethod
    def recognises(cls, path: Path) -> bool:
        path = Path(path).expanduser()
        return apps.signal_folder(path) is not None or (path.is_file() and looks_encrypted(path))

    @classmethod
    def places(cls, home: Path) -> list[Place]:
        """Signal Desktop's folder on Linux, macOS and Windows (the key is in its config.json)."""
        return [Place(home / folder, "signal-desktop", "signal")
                for folder in (".config/Signal", "Library/Application Support/Signal", "AppData/Roaming/Signal")]

    def __init__(self, path: Path, options: SourceOptions, workdir: Path):
        self.path = Path(path).expanduser().absolute()
        self.options = options
        self.workdir = Path(workdir)
        self.signal = apps.signal_folder(self.path)
        self.file = self.signal / apps.SIGNAL_DB if self.signal else self.path
        settings = options.settings
        self.app = ("signal" if self.signal else
                    "wechat" if apps.is_wechat(self.file) or "uin" in settings else settings.get("app"))
        from . import cipher

        self.settings = cipher.settings_from(settings, self.app)

    def databases(self) -> list[Database]:
        if not self.file.is_file():
            raise SourceError(f"{self.file} does not exist", hint="check the path to the encrypted database")
        _key, settings = self._key()
        return [Database(name=self._name(), signature=self._signature(settings), app=self.app,
                         origin=settings.origin(self.app))]

    def materialise(self, db: Database) -> Path:
        key, settings = self._key()
        private_dirs(self.workdir)
        copy = self.workdir / f".{db.name}.sqlcipher"
        try:
            self._stable_copy(copy)
            out = self.workdir / f"{db.name}.plain.db"
            from . import codec  # sqlcipher3: only when a database is decrypted

            codec.decrypt(copy, out, key, settings, what=self.file)
            return out
        finally:
            for suffix in ("",) + COMPANIONS:
                Path(f"{copy}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        pass

    @classmethod
    def write_back(cls, plain: Path, out: Path, origin: dict, options: SourceOptions) -> None:
        """Write `plain` to `out` encrypted as the app keeps it: the recorded settings, the given key."""
        from . import cipher, codec

        app = origin.get("app")
        settings = cipher.settings_from(origin, app)

        codec.encrypt(Path(plain), Path(out), _given_key(options, app, out), settings)

    def _key(self) -> tuple[str, CipherSettings]:
        from . import cipher

        if self.options.key_file is not None or self.signal is None:
            key = _given_key(self.options, self.app, self.file)
        else:
            key = apps.signal_key(self.signal)
        form = cipher.key_form_of(key, self.settings, stated="key_form" in self.options.settings)
        return key, dataclasses.replace(self.settings, key_form=form)

    def _name(self) -> str:
        if self.options.name:
            return self.options.name
        if self.app in ("signal", "wechat"):
            return self.app
        return NAME_UNSAFE.sub("-", self.file.stem).strip("-._") or "sqlcipher"

    def _signature(self, settings: CipherSettings) -> str:
        files = [self.file] + [Path(f"{self.file}{suffix}") for suffix in COMPANIONS]
        if self.signal:
            files.append(self.signal / apps.SIGNAL_CONFIG)
        return json.dumps(settings.origin(self.app), sort_keys=True) + stat_signature(*files)

    def _stable_copy(self, copy: Path) -> None:
        """Copy the file and its companions as of one moment: again if the app wrote meanwhile."""
        files = [self.file] + [Path(f"{self.file}{suffix}") for suffix in COMPANIONS]
        delay = STABLE_COPY_DELAY
        for _ in range(STABLE_COPY_TRIES):
            before = stat_signature(*files)
            for f, suffix in zip(files, ("",) + COMPANIONS):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)
                try:
                    copied = copy_untouched(f, Path(f"{copy}{suffix}"))
                except OSError as e:
                    raise SourceError(f"{f} can't be read: {e.strerror}", hint="check its permissions") from None
                if not copied and not suffix:
                    raise SourceError(f"{f} does not exist", hint="check the path to the encrypted database")
            if stat_signature(*files) == before:
                return
            time.sleep(delay)
            delay *= 2
        raise SourceError(f"{self.file} kept changing while it was copied", hint=WAIT_HINT)


def _given_key(options: SourceOptions, app: str | None, what: Path) -> str:
    """The key file's line, else WeChat's key derived from the imei and uin settings."""
    if options.key_file is not None:
        return options.key()
    if "uin" in options.settings:
        from . import cipher

        return cipher.wechat_key(options.settings.get("imei", cipher.WECHAT_DEFAULT_IMEI),
                                 options.settings["uin"])
    hint = "give --key-file FILE (one line, mode 0600) to decrypt it"
    if app == "wechat":
        hint += ", or the phone's imei and WeChat's uin in the source's settings"
    raise KeyProblem(f"{what} is encrypted (SQLCipher) and needs its key", hint=hint)


@hookimpl
def register_sources():
    return [SQLCipherSource]
