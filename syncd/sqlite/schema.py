"""Reading a database's schema, settings and table shapes.

A *shape* is what the mirror needs to know about a table: which columns hold
stored values (generated columns are derived, so they are left out) and how a
row is identified: by rowid, or by its primary key in a WITHOUT ROWID table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import apsw

from ..errors import SourceError
from .guard import altered

# The settings that make two databases "the same" beyond their rows. Only WAL is
# recorded in the file among journal modes, so others read back as "delete".
PRAGMAS = ("page_size", "auto_vacuum", "encoding", "journal_mode", "user_version", "application_id")
ROWID_ALIASES = ("rowid", "_rowid_", "oid")
# What an archive may record (anything else was not written by syncd).
KINDS = ("table", "index", "view", "trigger")
ENCODINGS = ("UTF-8", "UTF-16le", "UTF-16be")
JOURNAL_MODES = ("delete", "truncate", "persist", "memory", "wal", "off")
PAGE_SIZES = tuple(512 << i for i in range(8))  # 512 … 65536
INT32 = range(-(1 << 31), 1 << 31)
# A collation is written into the mirror's CREATE TABLE unquoted, as SQLite names it.
COLLATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote(name: str) -> str:
    """Quote an SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Shape:
    """The stored columns of a table and its key: None for rowid, else ((column, collation), …)."""

    columns: tuple[str, ...]
    key: tuple[tuple[str, str], ...] | None = None

    def to_json(self) -> str:
        return json.dumps({"columns": self.columns, "key": self.key}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, table: str) -> Shape:
        """The shape recorded for `table`, checked: an archive's owner may have written anything."""
        try:
            data = json.loads(text)
            columns, key = tuple(data["columns"]), data["key"]
            key = None if key is None else tuple((column, collation) for column, collation in key)
        except (ValueError, TypeError, KeyError):
            raise altered(f"the shape recorded for table {table!r} is not readable") from None
        names = [c.lower() for c in columns if isinstance(c, str)]
        if len(names) != len(columns) or len(set(names)) != len(names):
            raise altered(f"the shape recorded for table {table!r} has unusable column names")
        if key is not None and not (key and all(c in columns and isinstance(k, str) and COLLATION.match(k)
                                                for c, k in key)):
            raise altered(f"the shape recorded for table {table!r} has an unusable key")
        if key is None and {"rowid", "_rowid_", "oid"} <= set(names):
            raise altered(f"the shape recorded for table {table!r} leaves no way to write its rowids")
        return cls(columns, key)


@dataclass(frozen=True)
class SchemaEntry:
    """One row of sqlite_schema, plus the shape of tables whose rows are mirrored."""

    name: str
    type: str
    tbl_name: str
    sql: str | None
    seq: int  # its rowid in sqlite_schema: creation order, which restore follows
    shape: Shape | None = None

    @property
    def is_virtual(self) -> bool:
        return self.type == "table" and self.shape is None


def checked_entry(name, type_, tbl_name, sql, seq, shape: str | None) -> SchemaEntry:
    """A schema entry as an archive records it, checked for what syncd writes."""
    if not (isinstance(name, str) and type_ in KINDS and isinstance(tbl_name, str)
            and (sql is None or isinstance(sql, str)) and type(seq) is int):
        raise altered(f"the archive records a schema entry {str(name)[:80]!r} that syncd never writes")
    if shape is not None and (type_ != "table" or not isinstance(shape, str)):
        raise altered(f"the archive records a shape for {name!r}, which is no table")
    return SchemaEntry(name, type_, tbl_name, sql, seq, Shape.from_json(shape, name) if shape else None)


def checked_pragmas(pragmas: dict) -> dict[str, int | str]:
    """The settings an archive records, each a value SQLite accepts for it."""
    allowed = {"page_size": PAGE_SIZES, "auto_vacuum": (0, 1, 2), "encoding": ENCODINGS,
               "journal_mode": JOURNAL_MODES, "user_version": INT32, "application_id": INT32}
    for name, values in allowed.items():
        value = pragmas.get(name)
        if type(value) is not (str if isinstance(values[0], str) else int) or value not in values:
            raise altered(f"the archive records {name} = {str(value)[:40]!r}, which no SQLite database has")
    return {name: pragmas[name] for name in allowed}


def read_schema(db: apsw.Connection, schema: str = "main") -> list[SchemaEntry]:
    """Every object in `schema` that a restore must recreate, in creation order.

    Automatic indexes are left out: their table's CREATE statement makes them.
    """
    kinds = {name: kind for _, name, kind, *_ in db.execute(f"PRAGMA {quote(schema)}.table_list")}
    entries = []
    rows = db.execute(f"SELECT rowid, type, name, tbl_name, sql FROM {quote(schema)}.sqlite_schema ORDER BY rowid")
    for seq, type_, name, tbl_name, sql in rows.fetchall():
        if sql is None and name.startswith("sqlite_autoindex_"):
            continue
        mirrored = type_ == "table" and kinds.get(name) in ("table", "shadow")
        shape = read_shape(db, schema, name) if mirrored else None
        entries.append(SchemaEntry(name, type_, tbl_name, sql, seq, shape))
    return entries


def read_shape(db: apsw.Connection, schema: str, table: str) -> Shape:
    """The shape of one real table."""
    s, t = quote(schema), quote(table)
    info = db.execute(f"PRAGMA {s}.table_xinfo({t})").fetchall()
    columns = tuple(name for _, name, _, _, _, _, hidden in info if hidden == 0)
    without_rowid = any(wr for _, name, _, _, wr, _ in db.execute(f"PRAGMA {s}.table_list({t})") if name == table)
    if not without_rowid:
        return Shape(columns)
    pk_index = next(name for _, name, _, origin, _ in db.execute(f"PRAGMA {s}.index_list({t})") if origin == "pk")
    key = tuple(
        (name, coll.upper())
        for _, _, name, _, coll, is_key in db.execute(f"PRAGMA {s}.index_xinfo({quote(pk_index)})")
        if is_key
    )
    if not all(COLLATION.match(coll) for _, coll in key):
        raise SourceError(f"table {table!r} has a primary key with a collation syncd can't name",
                          hint="such a source can't be archived yet: please report the app that made it")
    return Shape(columns, key)


def read_pragmas(db: apsw.Connection, schema: str = "main") -> dict[str, int | str]:
    return {name: db.execute(f"PRAGMA {quote(schema)}.{name}").fetchall()[0][0] for name in PRAGMAS}


def rowid_alias(columns: tuple[str, ...]) -> str:
    """A name that reaches the rowid of a table with these columns."""
    taken = {c.lower() for c in columns}
    for alias in ROWID_ALIASES:
        if alias not in taken:
            return alias
    # SQLite itself offers no way to read such a table's rowids.
    raise ValueError("the table has columns named rowid, _rowid_ and oid, so its rowids can't be read")
