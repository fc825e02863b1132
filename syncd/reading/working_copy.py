"""A source's database kept current version by version, saying which rows each version changed.

Derived readers (history, through changes.py) need a version's changed rows as whole rows of the app's
own tables, read through its app profile: a changeset carries only the changed columns of
an UPDATE, and profiles look up other tables (iMessage's chat join, WhatsApp's media). So a
working copy holds two files in a private folder:

- `mirror.db`: the archive's mirror, rebuilt from version 1's base and advanced by applying
  each version's delta (what `syncd restore` does);
- `app.db`: the database as the app keeps it, exported from the mirror once, then patched
  row by row with the rows each delta touched, so a version costs what it changed. A version
  that changes the schema (rare: an app update) re-exports it whole.

`app.db` comes from a target, so from whoever controls it: it is opened with triggers off
(patching must fire none), defensive, untrusted schema, no extensions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import apsw

from ..archive.manifest import Manifest, Version
from ..archive.plain import Archive
from ..errors import ArchiveError
from ..mirror.mirror import ROWID, TABLE_PREFIX, Mirror, mirror_table, remove_database, source_column
from ..readback.export import export_database
from ..readback.restore import build_mirror, reading
from ..sqlite.schema import quote, read_shape, rowid_alias


@dataclass
class Changed:
    """What one version changed: the keys (app column → value) of the rows per table, or everything."""

    whole: bool = False
    rows: dict[str, list[dict[str, object]]] = field(default_factory=dict)


def open_app_db(path: Path) -> apsw.Connection:
    """A connection to a working copy's app database that runs nothing the schema holds."""
    db = apsw.Connection(str(path))
    for option, value in ((apsw.SQLITE_DBCONFIG_DEFENSIVE, 1), (apsw.SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0),
                          (apsw.SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0), (apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)):
        db.config(option, value)
    return db


class WorkingCopy:
    """One source's working copy in `folder` (0700, created by the caller)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.mirror_path, self.app_path = self.folder / "mirror.db", self.folder / "app.db"
        self.mirror: Mirror | None = Mirror(self.mirror_path) if self.mirror_path.exists() else None
        self.db: apsw.Connection | None = open_app_db(self.app_path) if self.app_path.exists() and self.mirror else None

    @property
    def version(self) -> int:
        """The version both files hold (0: none)."""
        return self.mirror.version if self.mirror and self.db else 0

    def close(self) -> None:
        for handle in (self.db, self.mirror):
            if handle is not None:
                handle.close()
        self.db = self.mirror = None

    def clear(self) -> None:
        self.close()
        remove_database(self.mirror_path)
        remove_database(self.app_path)

    def start(self, archive: Archive, manifest: Manifest, number: int = 1) -> Version:
        """Hold version `number`, rebuilt whole (from the base before it and the deltas since)."""
        self.clear()
        self.mirror = build_mirror(archive, manifest, number, self.mirror_path)
        self._export(archive, manifest.version(number))
        return manifest.version(number)

    def _export(self, archive: Archive, version: Version) -> None:
        assert self.mirror is not None
        if self.db is not None:
            self.db.close()
        remove_database(self.app_path)
        with reading(archive, version, self.folder):
            export_database(self.mirror, str(self.app_path))
        os.chmod(self.app_path, 0o600)  # decrypted data: private (the folder is 0700 meanwhile)
        self.db = open_app_db(self.app_path)
        self.db.execute("PRAGMA journal_mode=DELETE").fetchall()  # no -wal beside it to keep in step

    def advance(self, archive: Archive, version: Version, before: Callable[[Changed], None]) -> Changed:
        """Apply `version` (the one after the copy's) and say what it changed; `before(changed)` is
        called while app.db still holds the version before (to read the rows as they were)."""
        assert self.mirror is not None and self.db is not None
        if version.delta is None:  # the manifest came from the target: as restore's replay says it
            raise ArchiveError(f"{archive.location}: version {version.number} of {archive.source!r} has no delta to apply",
                               hint="run `syncd verify` on the target")
        with reading(archive, version, self.folder), tempfile.TemporaryDirectory(dir=self.folder) as tmp:
            path = Path(tmp, "delta")
            archive.fetch(version.delta, path)
            changeset = path.read_bytes()
            keys: dict[str, set[tuple]] = {}
            whole = False
            for change in apsw.Changeset.iter(changeset):
                if not change.name.startswith(TABLE_PREFIX):
                    whole = True  # the schema or a setting changed: re-export below
                    continue
                values = change.new if change.op == "INSERT" else change.old
                keys.setdefault(change.name[len(TABLE_PREFIX):], set()).add(
                    tuple(values[i] for i in sorted(change.pk_columns)))
            tables = {table: _Table(self.mirror.db, table) for table in keys}
            changed = Changed(whole, {t: [tables[t].app_key(k) for k in found] for t, found in keys.items()})
            before(changed)
            self.mirror.apply(changeset)
            self.mirror.commit(version.number)
            if whole:
                self._export(archive, version)
            else:
                with self.db:
                    for table, found in keys.items():
                        tables[table].patch(self.mirror.db, self.db, found)
            return changed

    def row(self, table: str, key: dict[str, object]) -> dict[str, object] | None:
        """The app's row of `table` with this key, as column → value (what `message_from_row` takes)."""
        assert self.db is not None
        where = " AND ".join(f"{quote(c)} IS ?" for c in key)
        cursor = self.db.execute(f"SELECT * FROM {quote(table)} WHERE {where}", tuple(key.values()))
        found = cursor.fetchone()
        if found is None:
            return None
        return dict(zip((d[0] for d in cursor.getdescription()), found))


class _Table:
    """One table as the mirror and app.db name it: its key columns in the order a changeset gives them."""

    def __init__(self, mirror: apsw.Connection, table: str):
        self.table = table
        shape = read_shape(mirror, "main", mirror_table(table)) if _exists(mirror, mirror_table(table)) else None
        self.mirror_columns = list(shape.columns) if shape else []
        keyed = {c for c, _ in shape.key} if shape and shape.key else {ROWID}
        self.mirror_key = [c for c in self.mirror_columns if c in keyed]  # column order, as a changeset's key
        # The mirror's rowid column (tables without a key) is the app table's rowid; others keep their names.
        stored = tuple(source_column(c) for c in self.mirror_columns if c != ROWID)
        app_name = {c: rowid_alias(stored) if c == ROWID else source_column(c) for c in self.mirror_columns}
        self.app_columns = [app_name[c] for c in self.mirror_columns]
        self.app_key_columns = [app_name[c] for c in self.mirror_key]

    def app_key(self, key: tuple) -> dict[str, object]:
        return dict(zip(self.app_key_columns, key))

    def patch(self, mirror: apsw.Connection, app: apsw.Connection, keys: set[tuple]) -> None:
        """Make app.db's rows with these keys what the mirror holds (deleted where it holds none)."""
        if not self.mirror_columns:  # the table is gone from the mirror: so are its rows
            return
        where = " AND ".join(f"{quote(c)} IS ?" for c in self.mirror_key)
        select = f"SELECT {', '.join(map(quote, self.mirror_columns))} FROM {quote(mirror_table(self.table))} WHERE {where}"
        delete = f"DELETE FROM {quote(self.table)} WHERE " + " AND ".join(f"{quote(c)} IS ?" for c in self.app_key_columns)
        insert = (f"INSERT INTO {quote(self.table)}({', '.join(map(quote, self.app_columns))})"
                  f" VALUES ({', '.join('?' * len(self.app_columns))})")
        for key in keys:
            app.execute(delete, key)
            for row in mirror.execute(select, key):
                app.execute(insert, row)


def _exists(db: apsw.Connection, table: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None
