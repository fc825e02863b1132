"""Turning a mirror back into the phone's database.

The output is built fresh: settings that only an empty file accepts (page size,
auto_vacuum, encoding) first, then tables from their recorded CREATE text, then
rows with their rowids, then indexes, views and triggers (triggers last, so
copying rows fires none), then sequences, `user_version` and journal mode.

The schema text comes from the archive, so from whoever controls the target:
each entry runs as one statement creating that entry and nothing else, in a
connection hardened by syncd.guard that can't write any other file.
"""

from __future__ import annotations

import apsw

from pathlib import Path

from ..errors import ArchiveError, no_space
from ..sqlite.guard import Guard
from ..mirror.mirror import ROWID, Mirror, mirror_column, mirror_table
from ..sqlite.schema import SchemaEntry, quote, rowid_alias

# SQLite makes these itself: sqlite_sequence with the first AUTOINCREMENT table,
# the statistics tables with ANALYZE.
SEQUENCE = "sqlite_sequence"
STAT_TABLES = ("sqlite_stat1", "sqlite_stat4")


def export_database(mirror: Mirror, output: str) -> None:
    """Write the database the mirror holds to `output`, a path that doesn't exist yet."""
    entries = mirror.schema()
    pragmas = mirror.pragmas()  # checked values only, so they can be written into SQL
    out = apsw.Connection(output)
    try:
        guard = Guard(out)
        # The mirror is attached to be read: nothing attached may be created or written.
        out.config(apsw.SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, 0)
        out.config(apsw.SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, 0)
        _apply_file_settings(out, pragmas)
        with guard.attaching():
            out.execute("ATTACH ? AS mirror", (str(mirror.path),))
        out.execute("BEGIN")
        _create_tables(guard, entries)
        # Internal tables go last: copying into AUTOINCREMENT tables bumps sqlite_sequence.
        with guard.writing_shadow_tables():
            for entry in sorted((e for e in entries if e.shape), key=lambda e: e.name.startswith("sqlite_")):
                _copy_rows(out, entry)
        for entry in entries:
            if entry.type in ("index", "view", "trigger") and entry.sql:
                guard.create(entry.type, entry.name, entry.sql)
        out.execute(f"PRAGMA user_version={pragmas['user_version']}")
        out.execute(f"PRAGMA application_id={pragmas['application_id']}")
        out.execute("COMMIT")
        with guard.attaching():
            out.execute("DETACH mirror")
        if pragmas["journal_mode"] == "wal":
            out.execute("PRAGMA journal_mode=WAL")
        problems = [row[0] for row in out.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise ArchiveError(f"the restored database fails its integrity check: {problems[0]}")
    except apsw.Error as e:
        raise no_space(e, Path(output).parent) or ArchiveError(f"could not rebuild the database: {e}") from None
    finally:
        out.close()


def _apply_file_settings(out: apsw.Connection, pragmas: dict) -> None:
    out.execute(f"PRAGMA page_size={pragmas['page_size']}")
    out.execute(f"PRAGMA auto_vacuum={pragmas['auto_vacuum']}")
    out.execute(f"PRAGMA encoding='{pragmas['encoding']}'")


def _create_tables(guard: Guard, entries: list[SchemaEntry]) -> None:
    """Virtual tables first: creating one makes its shadow tables, whose rows are then replaced."""
    out = guard.db
    for entry in entries:
        if entry.is_virtual:
            guard.create("table", entry.name, entry.sql, virtual=True)
    existing = {name for (name,) in out.execute("SELECT name FROM sqlite_schema")}
    for entry in entries:
        if entry.shape and entry.name not in existing and not entry.name.startswith("sqlite_"):
            guard.create("table", entry.name, entry.sql)
    names = {e.name for e in entries}
    if SEQUENCE in names and SEQUENCE not in _tables(out):
        # The app dropped every AUTOINCREMENT table, but the sequence table outlives them.
        out.execute('CREATE TABLE "syncd:seq"(x INTEGER PRIMARY KEY AUTOINCREMENT); DROP TABLE "syncd:seq"')
    if names & set(STAT_TABLES):
        out.execute("ANALYZE sqlite_schema")
        for stat in STAT_TABLES:
            if stat not in names and stat in _tables(out):
                out.execute(f"DROP TABLE {stat}")


def _tables(out: apsw.Connection) -> set[str]:
    return {name for (name,) in out.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}


def _copy_rows(out: apsw.Connection, entry: SchemaEntry) -> None:
    shape = entry.shape
    assert shape is not None
    table = quote(entry.name)
    targets = [quote(c) for c in shape.columns]
    sources = [quote(mirror_column(c)) for c in shape.columns]
    if shape.key is None:
        targets.insert(0, quote(rowid_alias(shape.columns)))
        sources.insert(0, quote(ROWID))
    out.execute(f"DELETE FROM {table}")
    out.execute(
        f"INSERT INTO {table}({', '.join(targets)}) "
        f"SELECT {', '.join(sources)} FROM mirror.{quote(mirror_table(entry.name))}"
    )
