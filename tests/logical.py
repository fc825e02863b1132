"""The fidelity check: do two SQLite files hold the same database, row for row?

"Same" means what an app reading the file can see: the schema text, the settings stored in the
file, and every row of every real table (shadow tables, sqlite_sequence and sqlite_stat* included)
under its rowid, with each value's storage class, so 1, 1.0, '1' and b'1' all differ. Page layout,
free pages and the physical order of rows are not part of it.

Databases are always read from a private copy (the file and its -wal), so the folder being checked
gains no -shm, -wal or journal file, just as syncd must never write a phone's folder.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import apsw

# Settings stored in the file that a restore must reproduce; freelist_count and the like are
# physical and left out.
PRAGMAS = ("page_size", "user_version", "application_id", "auto_vacuum", "journal_mode", "encoding")

_TYPE_NAMES = {int: "integer", float: "real", str: "text", bytes: "blob", type(None): "null"}
_ROWID_NAMES = ("rowid", "_rowid_", "oid")  # the first one the table doesn't use for a column
_INTERNAL_TABLES = {"sqlite_schema", "sqlite_master", "sqlite_temp_schema", "sqlite_temp_master"}
_GENERATED = (2, 3)  # table_xinfo "hidden" values of VIRTUAL and STORED generated columns

Typed = tuple[str, Any]  # (storage class, value), e.g. ("integer", 1) or ("text", "1")


def logical_state(path) -> dict:
    """Schema, file settings and every row of the database at `path`, as plain comparable data.

    Returns {"pragmas": {name: value}, "schema": {name: (type, name, tbl_name, sql)},
    "tables": {table: {"columns": (name, ...), "rows": [(key, (typed value, ...)), ...]}}}
    where key is the rowid (None if every rowid alias is shadowed by a column) or, for a
    WITHOUT ROWID table, the tuple of typed primary-key values. Generated columns are left out:
    their values follow from the others and the schema.
    """
    with _private_copy(path) as db:
        return {
            "pragmas": _pragmas(db),
            "schema": _schema(db),
            "tables": {table: {"columns": _columns(db, table), "rows": list(_rows(db, table))}
                       for table in _tables(db)},
        }


def assert_same_database(expected_path, actual_path) -> None:
    """Raise AssertionError naming the first difference between two databases.

    The actual database must also pass `PRAGMA integrity_check`.
    """
    with _private_copy(expected_path) as expected, _private_copy(actual_path) as actual:
        problems = [row[0] for row in actual.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:  # raised, not asserted, so that python -O still checks it
            raise AssertionError(f"{actual_path}: integrity_check failed: {problems[:5]}")
        _assert_same_mapping("pragma", _pragmas(expected), _pragmas(actual))
        _assert_same_mapping("schema entry", _schema(expected), _schema(actual))
        for table in _tables(expected):
            _assert_same_rows(table, _columns(expected, table), _rows(expected, table), _rows(actual, table))


@contextlib.contextmanager
def _private_copy(path) -> Iterator[apsw.Connection]:
    """A read-only connection to a copy of the database and its -wal in a temporary folder."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    with tempfile.TemporaryDirectory(prefix="syncd-logical-") as folder:
        copy = os.path.join(folder, "db.sqlite")
        shutil.copyfile(path, copy)
        if os.path.exists(path + "-wal"):
            shutil.copyfile(path + "-wal", copy + "-wal")
        db = apsw.Connection(copy, flags=apsw.SQLITE_OPEN_READONLY)
        try:
            yield db
        finally:
            db.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed(value) -> Typed:
    return (_TYPE_NAMES[type(value)], value)


def _pragmas(db: apsw.Connection) -> dict[str, Any]:
    return {name: db.execute(f"PRAGMA {name}").fetchone()[0] for name in PRAGMAS}


def _schema(db: apsw.Connection) -> dict[str, tuple]:
    return {name: (kind, name, table, sql)
            for kind, name, table, sql in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema")}


def _tables(db: apsw.Connection) -> list[str]:
    """Every table holding rows in the file: ordinary and shadow tables, not virtual ones."""
    return sorted(name for name, kind in db.execute(
        "SELECT name, type FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'shadow')")
        if name not in _INTERNAL_TABLES)


def _column_info(db: apsw.Connection, table: str) -> list[tuple]:
    """(name, position in the primary key or 0) of each stored, non-generated column."""
    return [(name, pk) for _, name, _, _, _, pk, hidden in db.execute(f"PRAGMA main.table_xinfo({_quote(table)})")
            if hidden not in _GENERATED]


def _columns(db: apsw.Connection, table: str) -> tuple[str, ...]:
    return tuple(name for name, _ in _column_info(db, table))


def _rows(db: apsw.Connection, table: str) -> Iterator[tuple[Any, tuple[Typed, ...]]]:
    """(key, typed values) of every row, in key order."""
    info = _column_info(db, table)
    columns = ", ".join(_quote(name) for name, _ in info)
    (without_rowid,) = db.execute("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?",
                                  (table,)).fetchone()
    if without_rowid:
        key_columns = [name for name, pk in sorted((c for c in info if c[1]), key=lambda c: c[1])]
        key_positions = [[name for name, _ in info].index(name) for name in key_columns]
        order = ", ".join(_quote(name) for name in key_columns)
        for row in db.execute(f"SELECT {columns} FROM main.{_quote(table)} ORDER BY {order}"):
            values = tuple(_typed(value) for value in row)
            yield tuple(values[i] for i in key_positions), values
        return
    names = {name.lower() for name, _ in info}
    alias = next((a for a in _ROWID_NAMES if a not in names), None)
    if alias is None:  # the rowid can't be named: compare rows by content alone
        for row in db.execute(f"SELECT {columns} FROM main.{_quote(table)} ORDER BY {columns}"):
            yield None, tuple(_typed(value) for value in row)
        return
    for rowid, *row in db.execute(f"SELECT {alias}, {columns} FROM main.{_quote(table)} ORDER BY {alias}"):
        yield rowid, tuple(_typed(value) for value in row)


def _short(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _assert_same_mapping(what: str, expected: dict, actual: dict) -> None:
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            raise AssertionError(f"{what} {name!r} missing: expected {_short(expected[name])}")
        if name not in expected:
            raise AssertionError(f"{what} {name!r} unexpected: actual {_short(actual[name])}")
        if expected[name] != actual[name]:
            raise AssertionError(f"{what} {name!r} differs: expected {_short(expected[name])},"
                                 f" actual {_short(actual[name])}")


def _assert_same_rows(table: str, columns: tuple[str, ...], expected: Iterator, actual: Iterator) -> None:
    """Walk both tables in key order and stop at the first row that differs."""
    missing = object()
    for number, (want, got) in enumerate(itertools.zip_longest(expected, actual, fillvalue=missing), 1):
        if got is missing:
            raise AssertionError(f"table {table!r}: row with key {_short(want[0])} missing from actual")
        if want is missing:
            raise AssertionError(f"table {table!r}: unexpected row with key {_short(got[0])} in actual")
        (want_key, want_values), (got_key, got_values) = want, got
        if want_key != got_key:
            raise AssertionError(_key_difference(table, number, want_key, got_key))
        for column, want_value, got_value in zip(columns, want_values, got_values, strict=True):
            if want_value != got_value:
                raise AssertionError(f"table {table!r}, {_row_name(number, want_key)}, column {column!r}: expected"
                                     f" {_short(want_value)}, actual {_short(got_value)}")


def _row_name(number: int, key) -> str:
    if key is None:
        return f"row {number}"
    return f"rowid {key}" if isinstance(key, int) else f"key {_short(key)}"


def _key_difference(table: str, number: int, want_key, got_key) -> str:
    if isinstance(want_key, int) and isinstance(got_key, int):
        if want_key < got_key:
            return f"table {table!r}: rowid {want_key} missing from actual"
        return f"table {table!r}: unexpected rowid {got_key} in actual"
    return f"table {table!r}, row {number}: expected key {_short(want_key)}, actual key {_short(got_key)}"
