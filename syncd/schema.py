"""Reading a database's schema, settings and table shapes.

A *shape* is what the mirror needs to know about a table: which columns hold
stored values (generated columns are derived, so they are left out) and how a
row is identified: by rowid, or by its primary key in a WITHOUT ROWID table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import apsw

# The settings that make two databases "the same" beyond their rows. Only WAL is
# recorded in the file among journal modes, so others read back as "delete".
PRAGMAS = ("page_size", "auto_vacuum", "encoding", "journal_mode", "user_version", "application_id")
ROWID_ALIASES = ("rowid", "_rowid_", "oid")


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
    def from_json(cls, text: str) -> Shape:
        data = json.loads(text)
        key = data["key"]
        return cls(tuple(data["columns"]), None if key is None else tuple(tuple(k) for k in key))


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
