"""Connections that turn archive data into databases: nothing they run reaches another file.

Whoever controls a target writes the schema text and settings a restore turns
into SQL, and the whole file a mirror is rebuilt from. Every connection to a
mirror or a database being restored is hardened here, once:

- defensive mode (no `writable_schema`, no `journal_mode=OFF`, no writes to
  shadow tables), `trusted_schema` off (a schema may only use innocuous
  functions and virtual tables), no extension loading;
- an authorizer: no ATTACH or DETACH but the code's own (`attaching`), only the
  pragmas syncd itself uses, and, while a schema entry's SQL runs (`create`),
  nothing but creating that entry in the main database.

Following SQLite's advice for untrusted databases (https://sqlite.org/security.html).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import apsw

from ..errors import CorruptObject

# What syncd runs once a connection is guarded, and what SQLite runs inside FTS, R-Tree and
# changeset code (data_version, defer_foreign_keys); none names or touches another file.
PRAGMAS = frozenset({
    "application_id", "auto_vacuum", "data_version", "database_list", "defer_foreign_keys", "encoding",
    "index_list", "index_xinfo", "integrity_check", "journal_mode", "page_size", "table_list", "table_xinfo",
    "user_version",
})
FORBIDDEN_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
CREATES = {"table": apsw.SQLITE_CREATE_TABLE, "index": apsw.SQLITE_CREATE_INDEX,
           "view": apsw.SQLITE_CREATE_VIEW, "trigger": apsw.SQLITE_CREATE_TRIGGER}
# Virtual table modules a chat app's schema uses (full-text search, R-Tree), all built into apsw.
MODULES = frozenset({"fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"})
READING = frozenset({apsw.SQLITE_READ, apsw.SQLITE_SELECT, apsw.SQLITE_FUNCTION, apsw.SQLITE_RECURSIVE})
WRITING = frozenset({apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE})
SCHEMA_TABLE = "sqlite_master"
SEQUENCE_TABLE = "sqlite_sequence"


class Guard:
    """The authorizer and settings of one connection; see the module docstring."""

    def __init__(self, db: apsw.Connection):
        self.db = db
        db.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
        db.config(apsw.SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0)
        db.config(apsw.SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0)
        self._attaching = False
        self._creating: tuple[str, str, bool] | None = None  # (kind, name, virtual) of the entry running
        self._created = False
        db.authorizer = self._authorize

    @contextmanager
    def attaching(self):
        """Allow the ATTACH or DETACH (or VACUUM INTO) the caller is about to run."""
        self._attaching = True
        try:
            yield
        finally:
            self._attaching = False

    @contextmanager
    def writing_shadow_tables(self):
        """Restoring FTS rows means writing its shadow tables, which defensive mode forbids."""
        self.db.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 0)
        try:
            yield
        finally:
            self.db.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)

    def create(self, kind: str, name: str, sql: object, *, virtual: bool = False) -> None:
        """Run `sql` if it is exactly one statement creating `kind` `name` in the main database.

        Raises CorruptObject for anything else, before running any of it.
        """
        if kind not in CREATES or not isinstance(sql, str):
            raise altered(f"the schema entry {name!r} is not a table, index, view or trigger with SQL")
        cursor = self.db.cursor()
        # SQLite hands statements over one at a time: the first must be all of it.
        cursor.exec_trace = lambda _cursor, statement, _bindings: len(statement) == len(sql)
        self._creating, self._created = (kind, name, virtual), False
        try:
            cursor.execute(sql)
        except apsw.ExecTraceAbort:
            raise altered(f"the schema entry {name!r} holds more than one statement") from None
        except apsw.AuthError:
            raise altered(f"the schema entry {name!r} does more than create {kind} {name!r}") from None
        finally:
            self._creating = None
            cursor.close()
        if not self._created:
            raise altered(f"the schema entry {name!r} does not create {kind} {name!r}")

    def _authorize(self, action: int, one: str | None, two: str | None, database: str | None, _inner) -> int:
        if action == apsw.SQLITE_FUNCTION and (two or "").lower() in FORBIDDEN_FUNCTIONS:
            return apsw.SQLITE_DENY
        if action in (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
            return apsw.SQLITE_OK if self._attaching and self._creating is None else apsw.SQLITE_DENY
        if action == apsw.SQLITE_PRAGMA and (one or "").lower() not in PRAGMAS:
            return apsw.SQLITE_DENY
        if self._creating is None:
            return apsw.SQLITE_OK
        return apsw.SQLITE_OK if self._allowed_while_creating(action, one, two, database) else apsw.SQLITE_DENY

    def _allowed_while_creating(self, action: int, one: str | None, two: str | None, database: str | None) -> bool:
        """What running one schema entry's CREATE statement may do (SQLite's own bookkeeping included)."""
        kind, name, virtual = self._creating
        if database not in (None, "main"):
            return False
        if action in READING:
            return True
        if action == apsw.SQLITE_PRAGMA:
            return two is None  # reading a setting, as FTS and R-Tree do
        # A virtual table's module makes its shadow tables, named after it, and fills them.
        shadow = virtual and one is not None and one.startswith(name + "_")
        if action == apsw.SQLITE_CREATE_VTABLE:
            own = virtual and one == name and (two or "").lower() in MODULES
        elif action == CREATES[kind] and not virtual:
            own = one == name
        else:
            own = False
        if own:
            self._created = True
            return True
        if action == apsw.SQLITE_CREATE_TABLE:
            return shadow or (kind == "table" and one == SEQUENCE_TABLE)  # the first AUTOINCREMENT table's
        if action == apsw.SQLITE_CREATE_INDEX:
            return (one or "").startswith("sqlite_autoindex_")
        if action in WRITING:
            return one == SCHEMA_TABLE or shadow
        return action == apsw.SQLITE_REINDEX and one == name


def altered(message: str) -> CorruptObject:
    """Archive content that syncd never writes: someone changed it."""
    return CorruptObject(message, hint="the archive on this target was altered; restore from another target")


def open_read_only(path: Path) -> apsw.Connection:
    """A read-only connection to syncd's own private copy of a database (a replica) that writes
    nothing beside it and runs nothing its schema holds (no triggers, no untrusted functions)."""
    db = apsw.Connection(Path(path).absolute().as_uri() + "?mode=ro&immutable=1",
                         flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    for option, value in ((apsw.SQLITE_DBCONFIG_DEFENSIVE, 1), (apsw.SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0),
                          (apsw.SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0), (apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)):
        db.config(option, value)
    return db

