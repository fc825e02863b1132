"""Copy one SQLite database into another, logically whole: schema, settings and every row under its rowid.

SQLCipher's own `sqlcipher_export()` renumbers the rowids of tables without an INTEGER PRIMARY
KEY when they have gaps, and leaves `user_version` behind; WeChat's `message.talkerId` points at
`rcontact`'s implicit rowid, so syncd copies itself. Both databases are open on one connection
(one plain, one keyed), `src` and `dst` being their schema names there.

Tables and indexes are created from their stored SQL under the `dst` schema; views, triggers and
virtual tables are written into `dst`'s schema table as they are (as `sqlcipher_export` does), since
a virtual table's shadow tables are copied as the real tables they are.
"""

from __future__ import annotations

# Settings stored in the file that must be set before the first table exists.
LAYOUT_PRAGMAS = ("page_size", "auto_vacuum")
# Settings that may be set at any time.
STAMP_PRAGMAS = ("user_version", "application_id")
# Hidden values of table_xinfo for generated columns: computed, never inserted.
GENERATED = (2, 3)
ROWID_NAMES = ("rowid", "_rowid_", "oid")
# The SQL stored for a table or index starts with these words, upper-cased by SQLite.
CREATE_PREFIXES = ("CREATE TABLE ", "CREATE UNIQUE INDEX ", "CREATE INDEX ")
STAT_TABLES = ("sqlite_stat1", "sqlite_stat4")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pragma(conn, schema: str, name: str):
    row = conn.execute(f"PRAGMA {schema}.{name}").fetchone()
    return row[0] if row else None


def copy_layout(conn, src: str, dst: str, names: tuple[str, ...] = LAYOUT_PRAGMAS) -> None:
    """Give the empty `dst` the page size and auto-vacuum mode of `src` (before any table)."""
    for name in names:
        value = int(pragma(conn, src, name))
        conn.execute(f"PRAGMA {dst}.{name} = {value}")


def copy_database(conn, src: str, dst: str) -> None:
    """Copy everything in schema `src` into the empty schema `dst`, in the current transaction."""
    tables = _real_tables(conn, src)
    for name, sql in _schema_rows(conn, src, "table"):
        if name in tables:
            conn.execute(_qualified(sql, dst))
    for name, has_rowid in tables.items():
        _copy_rows(conn, src, dst, name, has_rowid)
    if _has_table(conn, src, "sqlite_sequence"):
        conn.execute(f"DELETE FROM {dst}.sqlite_sequence")
        conn.execute(f"INSERT INTO {dst}.sqlite_sequence SELECT * FROM {src}.sqlite_sequence")
    for stat in STAT_TABLES:
        if _has_table(conn, src, stat):
            columns = "tbl, idx, stat" if stat == "sqlite_stat1" else "tbl, idx, neq, nlt, ndlt, sample"
            conn.execute(f"CREATE TABLE IF NOT EXISTS {dst}.{stat}({columns})")
            conn.execute(f"INSERT INTO {dst}.{stat} SELECT * FROM {src}.{stat}")
    for _name, sql in _schema_rows(conn, src, "index"):
        conn.execute(_qualified(sql, dst))
    # Views, triggers and virtual tables: their stored text, as it is (nothing to allocate).
    rows = conn.execute(f"SELECT type, name, tbl_name, sql FROM {src}.sqlite_master "
                        "WHERE type IN ('view', 'trigger') OR (type = 'table' AND rootpage = 0) "
                        "ORDER BY rowid").fetchall()
    if rows:
        conn.execute(f"PRAGMA {dst}.writable_schema = ON")
        conn.executemany(f"INSERT INTO {dst}.sqlite_master (type, name, tbl_name, rootpage, sql) "
                         "VALUES (?, ?, ?, 0, ?)", rows)
        conn.execute(f"PRAGMA {dst}.writable_schema = OFF")
    for name in STAMP_PRAGMAS:
        conn.execute(f"PRAGMA {dst}.{name} = {int(pragma(conn, src, name))}")


def _schema_rows(conn, schema: str, kind: str) -> list[tuple[str, str]]:
    return conn.execute(f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = ? AND rootpage > 0 "
                        "AND sql IS NOT NULL AND name NOT LIKE 'sqlite~_%' ESCAPE '~' ORDER BY rowid",
                        (kind,)).fetchall()


def _real_tables(conn, schema: str) -> dict[str, bool]:
    """Tables that hold rows of their own (shadow tables included) → whether they have rowids."""
    found = {}
    for _schema, name, kind, _ncol, without_rowid, _strict in conn.execute(f"PRAGMA {schema}.table_list"):
        if kind in ("table", "shadow") and not name.startswith("sqlite_"):
            found[name] = not without_rowid
    return found


def _has_table(conn, schema: str, name: str) -> bool:
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def _qualified(sql: str, schema: str) -> str:
    for prefix in CREATE_PREFIXES:
        if sql.startswith(prefix):
            return f"{prefix}{schema}.{sql[len(prefix):]}"
    raise ValueError("unexpected schema statement")  # SQLite normalises these prefixes; never seen


def _copy_rows(conn, src: str, dst: str, table: str, has_rowid: bool) -> None:
    columns = [row[1] for row in conn.execute(f"PRAGMA {src}.table_xinfo({quote(table)})")
               if row[6] not in GENERATED]
    names = [quote(c) for c in columns]
    if has_rowid:
        rowid = next((r for r in ROWID_NAMES if r not in {c.lower() for c in columns}), None)
        if rowid is not None:  # a table using all three names as columns keeps no reachable rowid
            names.insert(0, rowid)
    listed = ", ".join(names)
    conn.execute(f"INSERT INTO {dst}.{quote(table)} ({listed}) SELECT {listed} FROM {src}.{quote(table)}")
