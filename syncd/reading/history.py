"""Each message's life across an archive's versions: first seen, edits, recalls, deletes.

Derived data, kept in one SQLite file (0600): in the state dir for the local archive,
in a private temp folder when reading a target (so it is rebuilt from the target alone).
It holds

- `event(mkey, version, time, what, text, message)`: what happened to a message in a
  version: `new`, `edit` (`text` is the text it had before), `recall` (`text` is the
  text before the recall) or `delete` (`message` is the message as it last was);
- `"t:<table>"`: a copy of the mirror's message tables as of the last version read, so
  that an UPDATE in a changeset (which carries only the changed columns) maps to whole
  rows, and so to messages through the profile's `message_from_row`;
- `meta`: the last version read and its chained hash (a rewritten archive is read anew).

A version with only a delta costs what its changeset holds: only the changed rows of
message tables are looked up and mapped. A version with a base (the first, or one after
a table changed shape) is compared whole with the copy.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import apsw
import pluggy

from ..app import RECALLED, AppProfile, Message
from ..archive.plain import Archive
from ..errors import CorruptObject
from ..fsutil import private_dirs, private_opener
from ..mirror.mirror import ROWID, Mirror, mirror_table, source_column
from ..plugins import profile_for
from ..readback.restore import read_manifest, reading
from .model import DELETED, EDITED, RECALLED as RECALLED_STATUS, Annotations, MessageHistory

NEW, EDIT, RECALL, DELETE = "new", "edit", "recall", "delete"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS event(mkey TEXT NOT NULL, version INTEGER NOT NULL, time TEXT NOT NULL,
                                 what TEXT NOT NULL, text TEXT, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS event_by_message ON event(mkey, version);
CREATE INDEX IF NOT EXISTS event_by_what ON event(what, version);
"""


def utc_z(time: str) -> str:
    """A manifest time ("…+00:00") as ISO 8601 UTC with a Z, as exports write times."""
    moment = datetime.fromisoformat(time).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _encode(message: Message) -> str:
    return json.dumps(list(message), ensure_ascii=False, default=str)


def _decode(text: str) -> Message:
    fields = json.loads(text)
    fields[7] = tuple(fields[7])  # media
    return Message(*fields)


class History:
    """One source's history file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            open(self.path, "xb", opener=private_opener).close()  # 0600 before SQLite writes anything
        self.db = apsw.Connection(str(self.path))
        self.db.execute(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _meta(self, key: str):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _reset(self) -> None:
        tables = [name for (name,) in self.db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"
                                                      " AND name LIKE 't:%'")]
        with self.db:
            for table in tables:
                self.db.execute(f"DROP TABLE {_quote(table)}")
            self.db.execute("DELETE FROM event; DELETE FROM meta")

    # -- keeping it up to date -----------------------------------------------------------

    def update(self, archive: Archive, profile: AppProfile, scratch: Path) -> int:
        """Read every version not read yet; returns the last version read."""
        manifest = read_manifest(archive)
        done = self._meta("version") or 0
        if done and (done > len(manifest.versions) or manifest.version(done).hash != self._meta("hash")):
            self._reset()  # the archive was rewritten (or is another one): read it anew
            done = 0
        tables = [t.table for t in profile.message_tables()]
        for version in manifest.versions[done:]:
            with reading(archive, version, scratch), tempfile.TemporaryDirectory(dir=scratch) as tmp:
                with self.db:  # a version's events and copy change together, or not at all
                    if version.base is not None:
                        self._absorb_base(archive, version, profile, tables, Path(tmp))
                    else:
                        self._absorb_delta(archive, version, profile, tables, Path(tmp))
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?), ('hash', ?)",
                                    (version.number, version.hash))
        return len(manifest.versions)

    def _absorb_base(self, archive, version, profile, tables, tmp: Path) -> None:
        path = tmp / "base.db"
        archive.fetch(version.base, path)
        mirror = Mirror(path, untrusted=True)
        try:
            if mirror.version != version.number:
                raise CorruptObject(f"the base of version {version.number} holds version {mirror.version}")
            for table in tables:
                self._compare_whole(mirror.db, table, version, profile)
        finally:
            mirror.close()

    def _compare_whole(self, base: apsw.Connection, table: str, version, profile) -> None:
        """Replace the copy of `table` by the base's, recording what changed for every row."""
        name = mirror_table(table)
        found = base.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)).fetchone()
        old_rows = {}
        if self._has_table(name):
            key = _key_columns(self.db, name)
            old_columns = _columns(self.db, name)
            for row in self.db.execute(f"SELECT * FROM {_quote(name)}"):
                old_rows[tuple(row[i] for i in key)] = dict(zip(old_columns, row))
            self.db.execute(f"DROP TABLE {_quote(name)}")
        if found is not None:  # the mirror checked its tables' SQL when it opened (untrusted)
            self.db.execute(found[0])
            columns = _columns(self.db, name)  # the base's connection is guarded: read the copy's shape
            key = _key_columns(self.db, name)
            marks = ", ".join("?" * len(columns))
            insert = f"INSERT INTO {_quote(name)} VALUES ({marks})"
            for row in base.execute(f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(name)}"):
                self.db.execute(insert, row)
                new = dict(zip(columns, row))
                self._record(table, old_rows.pop(tuple(row[i] for i in key), None), new, version, profile)
        for old in old_rows.values():
            self._record(table, old, None, version, profile)

    def _absorb_delta(self, archive, version, profile, tables, tmp: Path) -> None:
        path = tmp / "delta"
        archive.fetch(version.delta, path)
        changeset = path.read_bytes()
        wanted = {mirror_table(t): t for t in tables if self._has_table(mirror_table(t))}
        keys: dict[str, set] = {name: set() for name in wanted}
        for change in apsw.Changeset.iter(changeset):
            if change.name in wanted:
                values = change.new if change.op == "INSERT" else change.old
                keys[change.name].add(tuple(values[i] for i in sorted(change.pk_columns)))
        if not any(keys.values()):
            return
        before = {name: self._rows(name, found) for name, found in keys.items()}

        def refuse(reason: int, change: apsw.TableChange) -> int:
            return apsw.SQLITE_CHANGESET_ABORT

        try:
            apsw.Changeset.apply(changeset, self.db, filter=lambda name: name in wanted, conflict=refuse)
        except apsw.AbortError:
            raise CorruptObject("its changeset doesn't fit the version before it",
                                hint="run `syncd verify` on the target") from None
        for name, found in keys.items():
            after = self._rows(name, found)
            for key in found:
                self._record(wanted[name], before[name].get(key), after.get(key), version, profile)

    def _rows(self, name: str, keys: set) -> dict[tuple, dict]:
        """The copy's rows of `name` with these keys, as column → value mappings."""
        key = _key_columns(self.db, name)
        columns = _columns(self.db, name)
        where = " AND ".join(f"{_quote(columns[i])} IS ?" for i in key)
        select = f"SELECT * FROM {_quote(name)} WHERE {where}"
        found = {}
        for wanted in keys:
            for row in self.db.execute(select, wanted):
                found[wanted] = dict(zip(columns, row))
        return found

    def _record(self, table: str, old: dict | None, new: dict | None, version, profile) -> None:
        before = _message(profile, table, old)
        after = _message(profile, table, new)
        if before is None and after is None:
            return
        mkey = json.dumps([table, (after or before).id], default=str)
        event = None
        if before is None:
            event = (NEW, None, after)
        elif after is None:
            event = (DELETE, None, before)
        elif after.kind == RECALLED and before.kind != RECALLED:
            event = (RECALL, before.text, after)
        elif after.text != before.text and after.kind != RECALLED:
            event = (EDIT, before.text, after)
        if event is not None:
            what, text, message = event
            self.db.execute("INSERT INTO event VALUES (?, ?, ?, ?, ?, ?)",
                            (mkey, version.number, utc_z(version.time), what, text, _encode(message)))

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    # -- reading it ----------------------------------------------------------------------

    def first_seen(self, table: str, message_id) -> tuple[int, str] | None:
        """The version in which a message first appeared, and that version's time."""
        return self.db.execute("SELECT version, time FROM event WHERE mkey = ? AND what = 'new'"
                               " ORDER BY version LIMIT 1", (json.dumps([table, message_id], default=str),)
                               ).fetchone()

    def annotations(self, number: int) -> Annotations:
        """Statuses and earlier texts as of version `number`: only messages something happened to are read."""
        history: dict[object, MessageHistory] = {}
        deleted: list[Message] = []
        rows = self.db.execute(
            "SELECT mkey, version, time, what, text, message FROM event"
            " WHERE version <= ?1 AND mkey IN (SELECT mkey FROM event WHERE what != 'new' AND version <= ?1)"
            " ORDER BY mkey, version, rowid", (number,))
        for life in _lives(rows):
            if life.deleted is not None:
                deleted.append(life.deleted)
                if life.earlier or life.recalled is not None:
                    history[life.deleted.id] = MessageHistory(DELETED, tuple(life.earlier), life.recalled)
            elif life.recalled is not None:
                history[life.message.id] = MessageHistory(RECALLED_STATUS, tuple(life.earlier), life.recalled)
            elif life.earlier:
                history[life.message.id] = MessageHistory(EDITED, tuple(life.earlier))
        return Annotations(history, deleted)


class _Life:
    """A message from its `new` event on (a key reused after a delete starts another life)."""

    def __init__(self):
        self.earlier: list[dict] = []
        self.recalled: str | None = None
        self.deleted: Message | None = None
        self.message: Message | None = None
        self.since: tuple[int, str] | None = None


def _lives(rows) -> Iterator[_Life]:
    """The last life of each message key, from its events in version order."""
    key, life = None, None
    for mkey, version, time, what, text, message in rows:
        if mkey != key:
            if life is not None and life.message is not None:
                yield life
            key, life = mkey, _Life()
        if what == NEW:
            life = _Life()
            life.since = (version, time)
        elif what == EDIT:
            since = life.since or (version, time)
            life.earlier.append({"text": text, "version": since[0], "time": since[1]})
            life.since = (version, time)
        elif what == RECALL:
            life.recalled = text
        elif what == DELETE:
            life.deleted = _decode(message)
        life.message = _decode(message)
    if life is not None and life.message is not None:
        yield life


def _message(profile: AppProfile, table: str, row: Mapping | None) -> Message | None:
    if row is None:
        return None
    return profile.message_from_row(table, {source_column(c): v for c, v in row.items() if c != ROWID})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(db: apsw.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute("SELECT * FROM pragma_table_info(?)", (table,))]


def _key_columns(db: apsw.Connection, table: str) -> list[int]:
    """Positions of the primary key's columns, in table order (as a changeset's key is read)."""
    return [cid for cid, pk in db.execute("SELECT cid, pk FROM pragma_table_info(?)", (table,)) if pk]


# -- wiring for `syncd export` ------------------------------------------------------------------


@contextmanager
def history_annotations(pm: pluggy.PluginManager, state: Path | None):
    """An `annotations(archive, version, db)` for export: the history file of each source kept in
    `state/history/` (the local archive), or in a private temp folder removed afterwards (a target)."""
    with tempfile.TemporaryDirectory(prefix="syncd-history-", dir=state) as tmp:
        folder = Path(state) / "history" if state is not None else Path(tmp)
        private_dirs(folder)

        def annotations(archive: Archive, number: int, db: apsw.Connection) -> Annotations:
            cls = profile_for(pm, db)
            if cls is None:
                return Annotations()
            history = History(folder / f"{_file_name(archive.source)}.sqlite")
            try:
                history.update(archive, cls(db), Path(tmp))
                return history.annotations(number)
            finally:
                history.close()

        yield annotations


def _file_name(source: str) -> str:
    """Source names are checked ([A-Za-z0-9._-]) when archived; a leading dot would hide the file."""
    return source.lstrip(".") or "source"
