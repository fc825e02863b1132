"""WhatsApp Android's encrypted backups, `msgstore.db.crypt15` and `.crypt14`, as a source.

The backup is read in place (plain reads, no atime change) and decrypted, checked and inflated
into the work dir; see `backup` for the format and docs/sources.md for the keys it takes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.errors import KeyProblem, SourceError
from syncd.fsutil import fsync_dir, private_dirs
from syncd.plugins import hookimpl
from syncd.source import Database, SourceOptions, stat_signature

if TYPE_CHECKING:
    from .backup import BackupKey

SUFFIXES = (".crypt14", ".crypt15")
NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class WhatsAppCryptSource:
    """One WhatsApp backup file, decrypted whenever it was replaced."""

    kind = "whatsapp-crypt"
    summary = "WhatsApp Android backups msgstore.db.crypt14/.crypt15, with the backup key"
    priority = 20

    @classmethod
    def recognises(cls, path: Path) -> bool:
        path = Path(path).expanduser()
        if not path.name.endswith(SUFFIXES) or not path.is_file():
            return False
        try:
            _format().read_header(path)
        except SourceError:
            return False
        return True

    def __init__(self, path: Path, options: SourceOptions, workdir: Path):
        self.path = Path(path).expanduser().absolute()
        self.options = options
        self.workdir = Path(workdir)

    def databases(self) -> list[Database]:
        header = _format().read_header(self.path)
        self._key()  # a missing or exposed key file is said now, before any pass
        name = self.options.name or "whatsapp"
        origin = {"kind": self.kind, "format": f"crypt{header.version}"}
        return [Database(name=name, signature=self._signature(origin), app="whatsapp", origin=origin)]

    def materialise(self, db: Database) -> Path:
        private_dirs(self.workdir)
        out = self.workdir / f"{NAME_UNSAFE.sub('-', db.name)}.plain.db"
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.unlink(missing_ok=True)
        _format().decrypt(self.path, self._key(), tmp)
        os.replace(tmp, out)
        fsync_dir(self.workdir)
        return out

    def close(self) -> None:
        pass

    def _key(self) -> BackupKey:
        backup = _format()
        if self.options.key_file is None:
            raise KeyProblem(f"{self.path} is an encrypted WhatsApp backup and needs its key",
                             hint=f"give --key-file FILE ({backup.KEY_FILE_HINT})")
        return backup.load_key(self.options.key_file)

    def _signature(self, origin: dict) -> str:
        return json.dumps(origin, sort_keys=True) + stat_signature(self.path)


def _format():
    """The backup format's module, imported once a path is named like a backup: every syncd
    command asks this kind whether it recognises its path."""
    from . import backup

    return backup


@hookimpl
def register_sources():
    return [WhatsAppCryptSource]
