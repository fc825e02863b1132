"""One reading of an archive's versions as messages: per version, what was added, changed and deleted.

History (and through it the search index) sees an archive only through `walk`: it advances
one source's working copy (working_copy.py) version by version and yields, per version,
the messages it touched as (before, after) pairs, read through the app profile on the
working copy as it was before and after that version:

- added: (None, message); deleted: (message, None); changed: (before, after), only when
  the model differs (a row whose unmodelled columns changed yields nothing).

A version with only a delta costs what its changeset holds: only the changed rows of the
app's message tables are read. Version 1, a later version with a base, or a delta that
changed the schema (an app update) is compared whole: the messages before are set aside in
a temporary SQLite file beside the copy (memory stays flat), then the new ones are matched
against it by message id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import apsw
import pluggy

from ..app import AppProfile, Message
from ..archive.manifest import Manifest, Version
from ..archive.plain import Archive
from ..fsutil import private_opener
from ..mirror.mirror import remove_database
from ..plugins import profile_for
from .working_copy import Changed, WorkingCopy

Pair = tuple[Message | None, Message | None]


@dataclass
class VersionChanges:
    """One version, read: the profile on the working copy as of it, and its (before, after) pairs.

    `pairs` streams: read it before asking `walk` for the next version."""

    version: Version
    profile: AppProfile | None
    pairs: Iterable[Pair]


def message_key(message_id: object) -> str:
    """A message id as the key history and search store (JSON: ints and strings stay apart)."""
    return json.dumps(message_id, ensure_ascii=False, default=str)


def encode(message: Message) -> str:
    return json.dumps(list(message), ensure_ascii=False, default=str)


def decode(text: str) -> Message:
    fields = json.loads(text)
    fields[7] = tuple(fields[7])  # media
    return Message(*fields)


def open_profile(pm: pluggy.PluginManager, copy: WorkingCopy) -> AppProfile | None:
    cls = profile_for(pm, copy.db) if copy.db is not None else None
    return cls(copy.db) if cls else None


def walk(archive: Archive, manifest: Manifest, pm: pluggy.PluginManager, copy: WorkingCopy,
         done: int) -> Iterator[VersionChanges]:
    """The versions after `done` (which the copy must hold; 0: none), each read and its copy advanced."""
    if copy.version != done:
        raise ValueError(f"the working copy holds version {copy.version}, not {done}")
    for version in manifest.versions[done:]:
        if copy.version == 0:
            copy.start(archive, manifest, version.number)
            profile = open_profile(pm, copy)
            yield VersionChanges(version, profile, _all_added(profile))
            continue
        if version.base is not None:  # a table changed shape: the version comes whole
            with _Aside(copy.folder) as aside:
                aside.keep(open_profile(pm, copy))
                copy.start(archive, manifest, version.number)
                profile = open_profile(pm, copy)
                yield VersionChanges(version, profile, aside.compare(profile))
            continue
        befores: dict[str, Message] = {}
        aside = _Aside(copy.folder)
        try:
            changed = copy.advance(archive, version, before=_before(pm, copy, befores, aside))
            profile = open_profile(pm, copy)
            if changed.whole:
                yield VersionChanges(version, profile, aside.compare(profile))
            else:
                yield VersionChanges(version, profile, _pairs(befores, _touched(profile, copy, changed)))
        finally:
            aside.close()


def _before(pm, copy: WorkingCopy, befores: dict, aside: _Aside) -> Callable[[Changed], None]:
    """What to read while the copy still holds the version before: the touched messages, or all of them."""

    def read(changed: Changed) -> None:
        profile = open_profile(pm, copy)
        if changed.whole:
            aside.keep(profile)
        else:
            befores.update((message_key(m.id), m) for m in _touched(profile, copy, changed))

    return read


def _touched(profile: AppProfile | None, copy: WorkingCopy, changed: Changed) -> Iterator[Message]:
    """The messages in the rows of message tables a version touched, as the copy holds them now."""
    if profile is None:
        return
    for table in (t.table for t in profile.message_tables()):
        for key in changed.rows.get(table, ()):
            row = copy.row(table, key)
            message = profile.message_from_row(table, row) if row is not None else None
            if message is not None:
                yield message


def _pairs(befores: dict[str, Message], afters: Iterable[Message]) -> Iterator[Pair]:
    for after in afters:
        before = befores.pop(message_key(after.id), None)
        if before != after:
            yield before, after
    for before in befores.values():
        yield before, None


def _all_added(profile: AppProfile | None) -> Iterator[Pair]:
    if profile is not None:
        for message in profile.messages():
            yield None, message


class _Aside:
    """Every message of the version before, set aside in a private temp file to compare a whole version with."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "aside.db"
        self.db: apsw.Connection | None = None

    def keep(self, profile: AppProfile | None) -> None:
        remove_database(self.path)
        open(self.path, "xb", opener=private_opener).close()  # decrypted data: 0600 before SQLite writes
        self.db = apsw.Connection(str(self.path))
        self.db.execute("PRAGMA journal_mode=OFF").fetchall()  # scratch: rebuilt if anything goes wrong
        self.db.execute("CREATE TABLE kept(key TEXT PRIMARY KEY, message TEXT NOT NULL, seen INTEGER DEFAULT 0)")
        if profile is not None:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO kept(key, message) VALUES (?, ?)",
                                    ((message_key(m.id), encode(m)) for m in profile.messages()))

    def compare(self, profile: AppProfile | None) -> Iterator[Pair]:
        assert self.db is not None
        find = "SELECT message FROM kept WHERE key = ?"
        if profile is not None:
            for after in profile.messages():
                key = message_key(after.id)
                found = self.db.execute(find, (key,)).fetchone()
                before = decode(found[0]) if found else None
                if found:
                    self.db.execute("UPDATE kept SET seen = 1 WHERE key = ?", (key,))
                if before != after:
                    yield before, after
        for (text,) in self.db.execute("SELECT message FROM kept WHERE seen = 0"):
            yield decode(text), None

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        remove_database(self.path)

    def __enter__(self) -> _Aside:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
