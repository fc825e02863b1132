"""Plain SQLite files: what a desktop app keeps (macOS Messages' chat.db, WhatsApp Desktop's
ChatStorage.sqlite), or a database someone already decrypted.

The file is read where it is, with its `-wal` and `-journal` beside it; the pipeline
copies what it needs privately and never opens the file itself.
"""

from __future__ import annotations

from pathlib import Path

from syncd.fsutil import read_head
from syncd.plugins import hookimpl
from syncd.source import Database, Place, SourceOptions, source_name_for, stat_signature

SQLITE_MAGIC = b"SQLite format 3\x00"
COMPANIONS = ("-wal", "-journal")


class SQLiteFile:
    kind = "sqlite"
    summary = "a plain SQLite database file, with its -wal"
    priority = 1000  # the fallback: every more specific kind is asked first

    @classmethod
    def recognises(cls, path: Path) -> bool:
        try:
            return read_head(path, len(SQLITE_MAGIC)) == SQLITE_MAGIC
        except OSError:
            return False

    @classmethod
    def places(cls, home: Path) -> list[Place]:
        """The plain databases desktop apps keep live (macOS; Full Disk Access guards Messages)."""
        return [
            Place(home / "Library/Messages/chat.db", "imessage-mac", "imessage"),
            Place(home / "Library/Group Containers/group.net.whatsapp.WhatsApp.shared/ChatStorage.sqlite",
                  "whatsapp-desktop", "whatsapp"),
        ]

    def __init__(self, path: Path, options: SourceOptions, workdir: Path):
        self.path = Path(path)
        self.name = options.name or source_name_for(self.path)

    def databases(self) -> list[Database]:
        files = [self.path, *(Path(f"{self.path}{suffix}") for suffix in COMPANIONS)]
        return [Database(self.name, stat_signature(*files), path=self.path)]

    def materialise(self, db: Database) -> Path:
        return self.path

    def close(self) -> None:
        pass


@hookimpl
def register_sources():
    return [SQLiteFile]
