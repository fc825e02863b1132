"""The mirror: the archive's working copy of one source database.

Every real table `T` of the source becomes table `"t:T"` of the mirror, keyed
by the source's rowid (column `"syncd:rowid"`) or, for WITHOUT ROWID tables, by
the same primary key. Mirror columns are declared without a type, so each value
keeps exactly the storage class it had in the source. The source's schema and
settings are rows too (tables `"syncd:schema"` and `"syncd:pragma"`), so one
SQLite session changeset carries any change an app makes, DDL included.

Bringing the mirror up to a new snapshot under a session yields the version's
changeset; applying that changeset to the previous mirror (the restore side)
repeats the same steps: schema rows first, then `conform` reshapes the mirror's
tables to the recorded shapes, then the rows.

A mirror may come from a target (a base), so opening one checks that it holds
only the tables syncd makes, exactly as syncd makes them, and its connection is
hardened (syncd.guard). A source column named like the mirror's key column gets
one more "syncd:" in the mirror, so any column name can be archived.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import apsw

from ..capture.detect import Plan, Range
from ..errors import ArchiveError
from ..fsutil import private_opener
from ..sqlite.guard import Guard, altered
from ..sqlite.schema import (ENCODINGS, Shape, SchemaEntry, checked_entry, checked_pragmas, quote, read_pragmas,
                     read_schema, read_shape, rowid_alias)

TABLE_PREFIX = "t:"
ROWID = "syncd:rowid"
SCHEMA_TABLE = "syncd:schema"
PRAGMA_TABLE = "syncd:pragma"
REBUILD_TABLE = "syncd:rebuild"
INTERNAL_PREFIX = "syncd:"
CACHE_KIB = 32 * 1024
SCHEMA_SQL = (f"CREATE TABLE {quote(SCHEMA_TABLE)}(name TEXT PRIMARY KEY, type TEXT, tbl_name TEXT,"
              " sql TEXT, seq INTEGER, shape TEXT)")
PRAGMA_SQL = f"CREATE TABLE {quote(PRAGMA_TABLE)}(name TEXT PRIMARY KEY, value)"
# Source column names that SQLite would take for the key column (any case, any number of "syncd:").
KEY_LIKE = re.compile(rf"^({INTERNAL_PREFIX})+rowid$", re.IGNORECASE)


@dataclass(frozen=True)
class RowCounts:
    """What a version did to the source's rows (its schema changes counted apart)."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    schema: int = 0

    def __bool__(self) -> bool:
        return any((self.added, self.changed, self.deleted, self.schema))

    def as_dict(self) -> dict[str, int]:
        return {"added": self.added, "changed": self.changed, "deleted": self.deleted, "schema": self.schema}


@dataclass(frozen=True)
class Changes:
    """The outcome of absorbing a snapshot: a changeset (None when not recorded), counts,
    and whether any mirror table changed shape (columns or key)."""

    changeset: bytes | None
    counts: RowCounts
    reshaped: bool = False


def remove_database(path: Path) -> None:
    """Delete a database file with its -wal and -shm: a stale -wal would be replayed into a new file."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def mirror_table(name: str) -> str:
    return TABLE_PREFIX + name


def mirror_column(column: str) -> str:
    """The mirror's name for a source column: itself, unless it could be taken for the key column."""
    return INTERNAL_PREFIX + column if KEY_LIKE.match(column) else column


def source_column(column: str) -> str:
    """The source column a mirror column holds (the inverse of `mirror_column`)."""
    return column[len(INTERNAL_PREFIX):] if KEY_LIKE.match(column) else column


def in_mirror(shape: Shape) -> Shape:
    """A table's shape with the mirror's column names."""
    key = None if shape.key is None else tuple((mirror_column(c), coll) for c, coll in shape.key)
    return Shape(tuple(mirror_column(c) for c in shape.columns), key)


def count_changes(changeset: bytes) -> RowCounts:
    ops: Counter[tuple[bool, str]] = Counter()
    for change in apsw.Changeset.iter(changeset):
        ops[change.name.startswith(TABLE_PREFIX), change.op] += 1
    schema = sum(n for (is_data, _), n in ops.items() if not is_data)
    return RowCounts(ops[True, "INSERT"], ops[True, "UPDATE"], ops[True, "DELETE"], schema)


class Mirror:
    """A mirror database file; changes happen in a transaction ended by commit or rollback."""

    def __init__(self, path: Path, *, encoding: str = "UTF-8", bulk: bool = False, untrusted: bool = False):
        """Open (or create) a mirror. `bulk` is for filling a new file that is thrown away if
        anything fails: no journal at all, so every page is written once. `untrusted` is for a
        file from a target: SQLite checks each page's cells as it reads them (a restore of 200,000
        messages took the same CPU time with it, 1.8-2.2 s)."""
        self.path = Path(path)
        new = not self.path.exists()
        if new:  # 0600, not SQLite's 0644 less the umask; its -wal and -shm take the file's mode
            open(self.path, "xb", opener=private_opener).close()
        self.db = apsw.Connection(str(self.path))
        self.bulk = bulk
        try:
            self.guard = self._prepare(new, encoding, untrusted)
        except BaseException:
            self.db.close()
            raise

    def _prepare(self, new: bool, encoding: str, untrusted: bool) -> Guard:
        if untrusted:
            self.db.execute("PRAGMA cell_size_check=ON")  # before any page is read
        # The local manifest, not the mirror, is the commit point: a mirror that loses its last
        # transaction in a power cut no longer matches it and is rebuilt. So no fsync per commit,
        # and none for a checkpoint on close either: the WAL is folded in as it fills.
        self.db.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
        bulk = self.bulk
        self.db.execute(f"PRAGMA synchronous={'OFF' if bulk else 'NORMAL'}; PRAGMA cache_size=-{CACHE_KIB}")
        self.db.execute(f"PRAGMA journal_mode={'OFF' if bulk else 'WAL'}").fetchall()
        guard = Guard(self.db)  # after journal_mode=OFF, which defensive mode forbids
        if new:
            # A database's text encoding is fixed by its first table, and an attached
            # source must share it.
            if encoding not in ENCODINGS:
                raise ValueError(f"unknown text encoding {encoding!r}")
            self.db.execute(f"PRAGMA encoding='{encoding}'")
            self.db.execute(SCHEMA_SQL)
            self.db.execute(PRAGMA_SQL)
        else:
            self._check_tables()
        return guard

    def close(self) -> None:
        self.db.close()

    def _check_tables(self) -> None:
        """Hold syncd's own tables only, as syncd makes them: a base from a target may hold anything."""
        for type_, name, sql in self.db.execute("SELECT type, name, sql FROM sqlite_schema").fetchall():
            if type_ == "index" and sql is None and str(name).startswith("sqlite_autoindex_"):
                continue  # a table's PRIMARY KEY
            if type_ != "table" or sql != self._expected_sql(name):
                raise altered(f"the mirror holds {type_} {str(name)[:80]!r}, which syncd doesn't make")

    def _expected_sql(self, name: str) -> str | None:
        if name in (SCHEMA_TABLE, PRAGMA_TABLE):
            return SCHEMA_SQL if name == SCHEMA_TABLE else PRAGMA_SQL
        if not name.startswith(TABLE_PREFIX):
            return None
        return _create_sql(quote(name), in_mirror(self._table_shape(name)))

    def vacuum_into(self, path: Path) -> None:
        """Write a compact copy of the mirror (a base) to `path`."""
        with self.guard.attaching():
            self.db.execute("VACUUM INTO ?", (str(path),))

    @property
    def version(self) -> int:
        """The archive version the mirror holds (0: none yet)."""
        return self.db.execute("PRAGMA user_version").fetchall()[0][0]

    # -- transactions ---------------------------------------------------------

    def commit(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version={int(version)}; COMMIT")
        self._detach_source()
        if self.bulk:
            # Marked WAL now, while nothing is synced: switching later would fsync the whole file.
            self.db.execute("PRAGMA journal_mode=WAL").fetchall()

    def rollback(self) -> None:
        if not self.db.in_transaction:
            self._detach_source()
            return
        self.db.execute("ROLLBACK")
        self._detach_source()

    def _detach_source(self) -> None:
        if any(name == "src" for _, name, _ in self.db.execute("PRAGMA database_list")):
            with self.guard.attaching():
                self.db.execute("DETACH src")

    # -- what the mirror holds -----------------------------------------------

    def schema(self) -> list[SchemaEntry]:
        rows = self.db.execute(
            f"SELECT name, type, tbl_name, sql, seq, shape FROM {quote(SCHEMA_TABLE)} ORDER BY seq"
        ).fetchall()
        return [checked_entry(*row) for row in rows]

    def pragmas(self) -> dict[str, int | str]:
        return checked_pragmas(dict(self.db.execute(f"SELECT name, value FROM {quote(PRAGMA_TABLE)}").fetchall()))

    # -- syncing side: absorb a snapshot ----------------------------------------

    def absorb(self, snapshot: Path, *, record: bool = True, plan: Plan | None = None) -> Changes:
        """Make the mirror equal to `snapshot`, leaving the transaction open.

        With `record`, a session collects the changeset; without (a first
        version, where every row is new) the rows are only counted. A `plan`
        from change detection limits which rows are compared; without one,
        or when it says "full", every row is.
        """
        db = self.db
        with self.guard.attaching():
            db.execute("ATTACH ? AS src", (str(snapshot),))
        db.execute("BEGIN IMMEDIATE")
        try:
            session = apsw.Session(db, "main") if record else None
            if session:
                session.attach()
            entries = read_schema(db, "src")
            schema_changes = self._store_settings(entries, read_pragmas(db, "src"))
            with _paused(session):
                reshaped = self._conform({e.name: e.shape for e in entries if e.shape})
            added = sum(self._absorb_table(e, _ranges(plan, e.name)) for e in entries if e.shape)
            if session:
                changeset = session.changeset()
                session.close()
                return Changes(changeset, count_changes(changeset) if changeset else RowCounts(), reshaped)
            return Changes(None, RowCounts(added=added, schema=schema_changes), reshaped)
        except BaseException:
            self.rollback()
            raise

    def _store_settings(self, entries: list[SchemaEntry], pragmas: dict[str, int | str]) -> int:
        """Record the source's schema and pragmas as rows; return how many rows changed."""
        schema_rows = {
            e.name: (e.type, e.tbl_name, e.sql, e.seq, e.shape.to_json() if e.shape else None) for e in entries
        }
        pragma_rows = {name: (value,) for name, value in pragmas.items()}
        return self._replace_rows(SCHEMA_TABLE, ("type", "tbl_name", "sql", "seq", "shape"), schema_rows) + (
            self._replace_rows(PRAGMA_TABLE, ("value",), pragma_rows)
        )

    def _replace_rows(self, table: str, columns: tuple[str, ...], wanted: dict[str, tuple]) -> int:
        """Make a small name-keyed table hold exactly `wanted`, touching only differing rows."""
        t = quote(table)
        cols = ", ".join(quote(c) for c in columns)
        current = {row[0]: tuple(row[1:]) for row in self.db.execute(f"SELECT name, {cols} FROM {t}")}
        touched = 0
        for name in current.keys() - wanted.keys():
            self.db.execute(f"DELETE FROM {t} WHERE name = ?", (name,))
            touched += 1
        marks = ", ".join("?" * (len(columns) + 1))
        for name, values in wanted.items():
            if not _same_values(current.get(name), values):
                self.db.execute(f"INSERT OR REPLACE INTO {t}(name, {cols}) VALUES ({marks})", (name, *values))
                touched += 1
        return touched

    def _absorb_table(self, entry: SchemaEntry, ranges: list[Range] | None) -> int:
        """Bring one mirror table up to the source table (within rowid `ranges`, if given)."""
        if ranges is None:
            return self._absorb_rows(entry, "")
        return sum(self._absorb_rows(entry, *_bounds(low, high)) for low, high in ranges)

    def _absorb_rows(self, entry: SchemaEntry, within: str, *bounds: int) -> int:
        """Compare the rows (whose rowid `within` bounds, a condition on `?rowid`), return rows written."""
        shape = entry.shape
        assert shape is not None
        m, s = quote(mirror_table(entry.name)), f"src.{quote(entry.name)}"
        kept = in_mirror(shape)
        columns, sources = [quote(c) for c in kept.columns], [quote(c) for c in shape.columns]
        if shape.key is None:
            try:
                alias = quote(rowid_alias(shape.columns))
            except ValueError as e:
                raise ArchiveError(f"table {entry.name!r}: {e}") from None
            key_target, key_columns, source_key = quote(ROWID), [quote(ROWID)], [alias]
        else:
            key_target = ", ".join(f"{quote(c)} COLLATE {coll}" for c, coll in kept.key)
            key_columns = source_key = []
        source_where = within.replace("?rowid", alias) if within else "true"
        differs = " OR ".join(
            f"{m}.{c} IS NOT excluded.{c} OR typeof({m}.{c}) IS NOT typeof(excluded.{c})" for c in columns
        )
        assignments = ", ".join(f"{c} = excluded.{c}" for c in columns)
        update = f"DO UPDATE SET {assignments} WHERE {differs}" if columns else "DO NOTHING"
        insert = (f"INSERT INTO {m}({', '.join(key_columns + columns)}) "
                  f"SELECT {', '.join(source_key + sources)} FROM {s} WHERE {source_where}")
        if self.bulk:
            # A new mirror's tables are empty: every row is an insert, and nothing can be deleted.
            self.db.execute(insert, bounds)
            return self.db.changes()
        self.db.execute(f"{insert} ON CONFLICT({key_target}) {update}", bounds)
        written = self.db.changes()
        if shape.key is None:
            mirror_where = f"{within.replace('?rowid', quote(ROWID))} AND " if within else ""
            self.db.execute(
                f"DELETE FROM {m} WHERE {mirror_where}{quote(ROWID)} NOT IN (SELECT {alias} FROM {s} WHERE {source_where})",
                bounds + bounds,
            )
        else:
            match = " AND ".join(f"s.{quote(c)} = m.{quote(mirror_column(c))}" for c, _ in shape.key)
            self.db.execute(f"DELETE FROM {m} AS m WHERE NOT EXISTS (SELECT 1 FROM {s} AS s WHERE {match})")
        return written

    # -- restoring side: apply a changeset ----------------------------------------

    def apply(self, changeset: bytes) -> None:
        """Apply one version's changeset, leaving the transaction open for commit."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._apply_part(changeset, lambda table: table.startswith(INTERNAL_PREFIX))
            self._conform({e.name: e.shape for e in self.schema() if e.shape})
            self._apply_part(changeset, lambda table: table.startswith(TABLE_PREFIX))
        except BaseException as e:
            self.rollback()
            if isinstance(e, apsw.Error) and not isinstance(e, (apsw.FullError, apsw.IOError)):
                # A changeset syncd wrote always applies to the mirror it was made from.
                raise altered(f"a changeset doesn't apply ({str(e).splitlines()[0]})") from None
            raise

    def _apply_part(self, changeset: bytes, wanted) -> None:
        conflicts: list[str] = []

        def refuse(reason: int, change: apsw.TableChange) -> int:
            conflicts.append(f"{change.op} on {change.name[len(TABLE_PREFIX):]!r}")
            return apsw.SQLITE_CHANGESET_ABORT

        try:
            apsw.Changeset.apply(changeset, self.db, filter=wanted, conflict=refuse)
        except apsw.AbortError:
            raise ArchiveError(
                f"a changeset doesn't fit the version before it ({conflicts[0] if conflicts else 'conflict'})",
                hint="run `syncd verify` on the target",
            ) from None

    # -- shared: reshape mirror tables ------------------------------------------------

    def _conform(self, wanted: dict[str, Shape]) -> bool:
        """Make the mirror's tables have exactly the wanted shapes, keeping rows where columns persist.

        Deterministic, because the syncing and the restoring side both run it
        between the schema rows and the data rows of a changeset. True if
        anything was reshaped.
        """
        have = self._table_shapes()
        if have == wanted:
            return False
        for name in sorted(have.keys() - wanted.keys()):
            self.db.execute(f"DROP TABLE {quote(mirror_table(name))}")
        for name, shape in wanted.items():
            old = have.get(name)
            table = quote(mirror_table(name))
            if old == shape:
                continue
            if old is None:
                self.db.execute(_create_sql(table, in_mirror(shape)))
            elif old.key == shape.key and shape.columns[: len(old.columns)] == old.columns:
                for column in shape.columns[len(old.columns):]:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {quote(mirror_column(column))}")
            else:
                self._rebuild(table, in_mirror(old), in_mirror(shape))
        return True

    def _rebuild(self, table: str, old: Shape, shape: Shape) -> None:
        """Copy a table into its new shape (both with the mirror's column names)."""
        kept = [quote(c) for c in shape.columns if c in old.columns]
        if old.key is None and shape.key is None:
            kept.insert(0, quote(ROWID))
        rebuild = quote(REBUILD_TABLE)
        self.db.execute(_create_sql(rebuild, shape))
        if kept:
            cols = ", ".join(kept)
            self.db.execute(f"INSERT OR IGNORE INTO {rebuild}({cols}) SELECT {cols} FROM {table} ORDER BY rowid")
        self.db.execute(f"DROP TABLE {table}; ALTER TABLE {rebuild} RENAME TO {table}")

    def _table_shapes(self) -> dict[str, Shape]:
        names = self.db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 't:%'"
        ).fetchall()
        return {name[len(TABLE_PREFIX):]: self._table_shape(name) for (name,) in names}

    def _table_shape(self, table: str) -> Shape:
        """The source's shape of a mirror table: without the key column, with source column names."""
        shape = read_shape(self.db, "main", table)
        columns = shape.columns if shape.key else shape.columns[1:]  # drop "syncd:rowid"
        key = None if shape.key is None else tuple((source_column(c), coll) for c, coll in shape.key)
        return Shape(tuple(source_column(c) for c in columns), key)


def _ranges(plan: Plan | None, table: str) -> list[Range] | None:
    """The rowid ranges of `table` to compare: None for all of it, [] for none."""
    if plan is None or plan.full or table in plan.whole:
        return None
    return plan.ranges.get(table, [])


def _bounds(low: int | None, high: int | None) -> tuple:
    """A condition on `?rowid` for (low, high], and its parameters."""
    conditions, params = [], []
    if low is not None:
        conditions.append("?rowid > ?")
        params.append(low)
    if high is not None:
        conditions.append("?rowid <= ?")
        params.append(high)
    return (" AND ".join(conditions) or "true"), *params


def _create_sql(table: str, shape: Shape) -> str:
    columns = [quote(c) for c in shape.columns]
    if shape.key is None:
        return f"CREATE TABLE {table}({', '.join([quote(ROWID) + ' INTEGER PRIMARY KEY'] + columns)})"
    key = ", ".join(f"{quote(c)} COLLATE {coll}" for c, coll in shape.key)
    return f"CREATE TABLE {table}({', '.join(columns)}, PRIMARY KEY({key})) WITHOUT ROWID"


def _same_values(a: tuple | None, b: tuple) -> bool:
    """Equal including storage class, so 1 and 1.0 differ."""
    return a is not None and len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b))


@contextmanager
def _paused(session: apsw.Session | None):
    """Reshaping tables is repeated by whoever applies the changeset, so it isn't recorded."""
    if session is None:
        yield
        return
    session.enabled = False
    try:
        yield
    finally:
        session.enabled = True
