"""Each message's life across an archive's versions: first seen, edits, recalls, deletes.

Derived data, kept in one SQLite file (0600) beside the source's working copy (a 0700
folder, see working_copy.py): in the state dir for the local archive or a search index,
in a private temp folder when exporting from a target (so it is rebuilt from the target
alone). It holds

- `event(mkey, version, time, what, text, message)`: what happened to a message (`mkey`:
  its app id as JSON) in a version: `new`, `edit` (`text` is the text it had before),
  `recall` (`text` is the text before the recall) or `delete` (`message` is the message as
  it last was);
- `meta`: the last version read, its chained hash (a rewritten archive is read anew) and
  version 1's time (when what has no later `new` event was first seen).

The versions are read by changes.py, the one reading of a version's changes: a version
costs what its changeset holds. The search index is built from these events, so a status
means one thing everywhere.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import apsw
import pluggy

from ..app import RECALLED, AppProfile, Message
from ..archive.manifest import Manifest
from ..archive.plain import Archive
from ..fsutil import private_dirs, private_opener
from ..plugins import profile_for
from ..readback.restore import read_manifest
from .changes import decode, encode, message_key, open_profile, walk
from .model import DELETED, EDITED, RECALLED as RECALLED_STATUS, Annotations, MessageHistory
from .working_copy import WorkingCopy

NEW, EDIT, RECALL, DELETE = "new", "edit", "recall", "delete"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS event(mkey TEXT NOT NULL, version INTEGER NOT NULL, time TEXT NOT NULL,
                                 what TEXT NOT NULL, text TEXT, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS event_by_message ON event(mkey, version);
CREATE INDEX IF NOT EXISTS event_by_what ON event(what, version);
CREATE INDEX IF NOT EXISTS event_by_version ON event(version);
"""


def utc_z(time: str) -> str:
    """A manifest time ("…+00:00") as ISO 8601 UTC with a Z, as exports write times."""
    moment = datetime.fromisoformat(time).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class History:
    """One source's history file, and its working copy in the folder beside it (`<stem>.copy`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.copy_folder = self.path.parent / f"{self.path.stem}.copy"
        if not self.path.exists():
            open(self.path, "xb", opener=private_opener).close()  # 0600 before SQLite writes anything
        self.db = apsw.Connection(str(self.path))
        # WAL (which takes the file's mode) and no fsync per commit: derived data, and a history whose last
        # versions a power cut took is out of step with its working copy, so it is read anew (update).
        self.db.execute("PRAGMA journal_mode=WAL").fetchall()
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _meta(self, key: str):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _reset(self, copy: WorkingCopy) -> None:
        copy.clear()
        tables = [name for (name,) in self.db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"
                                                      " AND name LIKE 't:%'")]  # copies kept by older syncd
        with self.db:
            for table in tables:
                self.db.execute(f"DROP TABLE {_quote(table)}")
            self.db.execute("DELETE FROM event; DELETE FROM meta")

    # -- keeping it up to date -----------------------------------------------------------

    def update(self, archive: Archive, pm: pluggy.PluginManager, manifest: Manifest | None = None) -> int:
        """Read every version not read yet (of `manifest`, the archive's as read); returns the last version read."""
        manifest = manifest or read_manifest(archive)
        done = self._meta("version") or 0
        private_dirs(self.copy_folder)
        copy = WorkingCopy(self.copy_folder)
        try:
            if done and (done > len(manifest.versions) or manifest.version(done).hash != self._meta("hash")
                         or copy.version != done):
                done = 0  # the archive was rewritten (or is another one), or the copy is out of step
            if not done:
                self._reset(copy)
            for changes in walk(archive, manifest, pm, copy, done):
                version = changes.version
                time = utc_z(version.time)
                with self.db:  # a version's events land together, or not at all (the copy then reads anew)
                    self.db.executemany("INSERT INTO event VALUES (?, ?, ?, ?, ?, ?)",
                                        _events(changes.pairs, version.number, time))
                    if version.number == 1:
                        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('first_time', ?)", (time,))
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?), ('hash', ?)",
                                    (version.number, version.hash))
        finally:
            copy.close()
        return len(manifest.versions)

    def profile(self, pm: pluggy.PluginManager) -> tuple[AppProfile | None, WorkingCopy]:
        """The app profile on the working copy as of the last version read (close the copy after use)."""
        copy = WorkingCopy(self.copy_folder)
        return open_profile(pm, copy), copy

    def events(self, after: int) -> Iterator[tuple[str, int, str, Message]]:
        """(mkey, version, what, message) of every event after version `after`, in the order they happened."""
        for mkey, version, what, message in self.db.execute(
                "SELECT mkey, version, what, message FROM event WHERE version > ? ORDER BY version, rowid", (after,)):
            yield mkey, version, what, decode(message)

    # -- reading it ----------------------------------------------------------------------

    def first_seen(self, number: int) -> tuple[dict[object, tuple[int, str]], tuple[int, str] | None]:
        """When each message in version `number` was first seen: those first seen after version 1 by
        id, and version 1's (version, time) for the rest (None before any version was read)."""
        later = {json.loads(mkey): (version, time) for mkey, version, time in self.db.execute(
            "SELECT mkey, max(version), time FROM event WHERE what = 'new' AND version BETWEEN 2 AND ?"
            " GROUP BY mkey", (number,))}  # the latest `new`: a key reused after a delete is another message
        first = self._meta("first_time")
        return later, ((1, first) if first is not None else None)

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
        later, first = self.first_seen(number)
        return Annotations(history, deleted, later, first)


def _events(pairs, number: int, time: str) -> Iterator[tuple]:
    """The event rows for one version's (before, after) pairs: what each change means for a message's life."""
    for before, after in pairs:
        if before is None:
            what, text, message = NEW, None, after
        elif after is None:
            what, text, message = DELETE, None, before
        elif after.kind == RECALLED and before.kind != RECALLED:
            what, text, message = RECALL, before.text, after
        elif after.text != before.text and after.kind != RECALLED:
            what, text, message = EDIT, before.text, after
        else:
            continue  # a change history doesn't tell (a status flag, a kind): nothing happened to the text
        yield message_key(message.id), number, time, what, text, encode(message)


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
            life.deleted = decode(message)
        life.message = decode(message)
    if life is not None and life.message is not None:
        yield life


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- wiring for `syncd export` ------------------------------------------------------------------


@contextmanager
def derived_state(state: Path | None):
    """Where derived data (history, the search index) lives: the state dir, or a private temp folder
    removed afterwards (reading a target on a fresh machine rebuilds it from the target alone)."""
    if state is not None:
        yield Path(state)
        return
    with tempfile.TemporaryDirectory(prefix="syncd-history-") as tmp:  # 0700, like mkdtemp
        yield Path(tmp)


@contextmanager
def history_annotations(pm: pluggy.PluginManager, state: Path | None):
    """An `annotations(archive, version, db)` for export: the history of each source kept in
    `state/history/` (the local archive), or in a private temp folder removed afterwards (a target)."""
    with derived_state(state) as root:
        yield annotations_in(pm, history_folder(root))


def annotations_in(pm: pluggy.PluginManager, folder: Path):
    """An `annotations(archive, version, db)` reading the histories kept in `folder` (made 0700)."""
    private_dirs(folder)

    def annotations(archive: Archive, number: int, db: apsw.Connection) -> Annotations:
        if profile_for(pm, db) is None:
            return Annotations()  # no app reads it: no messages to follow (and no working copy to build)
        history = open_history(folder, archive.source)
        try:
            history.update(archive, pm)
            return history.annotations(number)
        finally:
            history.close()

    return annotations


def history_folder(state: Path) -> Path:
    return Path(state) / "history"


def open_history(folder: Path, source: str) -> History:
    """The history of `source` in `folder` (0700, made by the caller).

    Source names are checked ([A-Za-z0-9._-]) when archived; a leading dot would hide the file."""
    return History(Path(folder) / f"{source.lstrip('.') or 'source'}.sqlite")
