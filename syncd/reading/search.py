"""`syncd search`: every text every message ever had, in every source and version, Chinese included.

The index is derived data in one SQLite file (`<state>/search/index.sqlite`, 0600) beside
each source's working copy (`<state>/search/copies/<source>/`, see working_copy.py):

- `source(name, app, version, hash)`: the last version indexed and its chained hash: an
  archive rewritten (or another one under the same name) is indexed anew;
- `message`: one row per message *life* (a key reused after a delete starts another):
  `msg_id` is the app's message id as JSON (what exports call `id`, and what history keys
  on), its conversation, sender, time, and `status` as of the last version indexed
  (`present`, `edited`, `recalled`, `deleted`) with the version that set it;
- `text`: each distinct text a message had, with the version it first appeared in. An edit
  adds one, a recall or delete adds none, so earlier texts stay searchable;
- `text_fts`: a contentless FTS5 table over `text` (same rowids), segmented by segment.py;
- `name`: conversation and participant names as of the last version.

Version 1 is indexed whole; each later version costs what its delta changed: only the rows
of the app's message tables its changeset touches are read and compared. Everything is
rebuilt from a target alone when the state dir is new.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import apsw
import pluggy

from ..app import RECALLED as RECALLED_KIND, AppProfile, Message, time_range
from ..archive.plain import Archive
from ..errors import UsageError
from ..fsutil import private_dirs, private_opener
from ..plugins import profile_for
from ..readback.restore import read_manifest
from .model import DELETED, EDITED, PRESENT, RECALLED, IsoTime
from .segment import TOKENIZER, fts_query, hit_spans, index_columns
from .working_copy import Changed, WorkingCopy

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
SNIPPET = 160  # characters of a long text shown around its first hit

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS source(name TEXT PRIMARY KEY, app TEXT, version INTEGER NOT NULL, hash TEXT);
CREATE TABLE IF NOT EXISTS message(id INTEGER PRIMARY KEY, source TEXT NOT NULL, msg_id TEXT NOT NULL,
    conversation TEXT, sender TEXT, from_me INTEGER, time INTEGER, kind TEXT,
    status TEXT NOT NULL, status_version INTEGER);
CREATE INDEX IF NOT EXISTS message_by_id ON message(source, msg_id, id);
CREATE TABLE IF NOT EXISTS text(id INTEGER PRIMARY KEY, message INTEGER NOT NULL, text TEXT NOT NULL,
    version INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS text_by_message ON text(message);
CREATE TABLE IF NOT EXISTS name(source TEXT, kind TEXT, id TEXT, name TEXT, PRIMARY KEY(source, kind, id))
    WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(words, chars, content='', contentless_delete=1,
    tokenize='{TOKENIZER}');
"""


@dataclass(frozen=True)
class Hit:
    """One text that matched, and the message that had it."""

    source: str
    app: str | None
    id: object  # the app's message id
    conversation: str
    conversation_name: str
    sender: str | None
    sender_name: str | None
    from_me: bool
    time: str  # ISO 8601 UTC
    kind: str
    text: str
    version: int  # the first version that held this text
    status: str  # as of the last version indexed: present, edited, recalled, deleted
    status_version: int | None  # the version in which it was edited, recalled or deleted
    hits: tuple[tuple[int, int], ...]  # where the query occurs in `text`: (start, end) offsets

    def marked(self, start: str = "«", end: str = "»") -> str:
        out, at = [], 0
        for a, b in self.hits:
            out += [self.text[at:a], start, self.text[a:b], end]
            at = b
        return "".join(out) + self.text[at:]

    def snippet(self, width: int = SNIPPET) -> str:
        """The marked text on one line, cut to about `width` characters around the first hit."""
        text = self.marked().replace("\r", " ").replace("\n", " ")
        if len(text) <= width:
            return text
        first = text.find("«")
        start = max(0, min(first - width // 3, len(text) - width))
        return ("…" if start else "") + text[start:start + width] + ("…" if start + width < len(text) else "")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hits"] = [list(h) for h in self.hits]
        d["marked"] = self.marked()
        return d


def indexable(message: Message | None) -> str | None:
    """The text a message contributes: none for a recall notice (the text before it is what counts)."""
    if message is None or message.kind == RECALLED_KIND or not isinstance(message.text, str) or not message.text:
        return None
    return message.text


class SearchIndex:
    """The search index in `folder` (created 0700), covering every source it was updated with."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        private_dirs(self.folder / "copies")
        path = self.folder / "index.sqlite"
        if not path.exists():
            open(path, "xb", opener=private_opener).close()  # 0600 before SQLite writes anything
        self.db = apsw.Connection(str(path))
        self.db.execute("PRAGMA journal_mode=DELETE").fetchall()  # the journal takes the file's mode
        self.db.execute(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- keeping it up to date -----------------------------------------------------------

    def update(self, archive: Archive, pm: pluggy.PluginManager) -> int:
        """Index every version of `archive` not indexed yet; returns how many it indexed."""
        source = archive.source
        manifest = read_manifest(archive)
        versions = manifest.versions
        found = self.db.execute("SELECT version, hash FROM source WHERE name = ?", (source,)).fetchone()
        done, chained = found or (0, None)
        indexed = 0
        copy_dir = self.folder / "copies" / (source.lstrip(".") or "source")
        private_dirs(copy_dir)
        copy = WorkingCopy(copy_dir)
        try:
            if done and (done > len(versions) or versions[done - 1].hash != chained or copy.version != done):
                self._forget(source)  # rewritten, another archive, or a copy out of step: index anew
                done = 0
            for version in versions[done:]:
                if done == 0:
                    copy.start(archive, manifest)
                    changed = Changed(whole=True)
                else:
                    befores: dict[tuple[str, str], Message | None] = {}
                    profile = self._profile(pm, copy)
                    changed = copy.advance(archive, version,
                                           before=lambda c: befores.update(self._messages(profile, copy, c)))
                profile = self._profile(pm, copy)
                with self.db:
                    if profile is not None:
                        if changed.whole:
                            self._absorb_whole(source, profile, version.number)
                        else:
                            after = dict(self._messages(profile, copy, changed))
                            for key, message in after.items():
                                self._record(source, befores.get(key), message, version.number)
                        self._names(source, profile)
                    self.db.execute("INSERT OR REPLACE INTO source VALUES (?, ?, ?, ?)",
                                    (source, profile.app if profile else None, version.number, version.hash))
                done = version.number
                indexed += 1
        finally:
            copy.close()
        return indexed

    @staticmethod
    def _profile(pm: pluggy.PluginManager, copy: WorkingCopy) -> AppProfile | None:
        cls = profile_for(pm, copy.db)
        return cls(copy.db) if cls else None

    @staticmethod
    def _messages(profile: AppProfile | None, copy: WorkingCopy, changed: Changed) -> Iterator:
        """((table, key), Message or None) for each changed row of a message table, as app.db holds it now."""
        if profile is None:
            return
        for table in (t.table for t in profile.message_tables()):
            for key in changed.rows.get(table, ()):
                row = copy.row(table, key)
                yield (table, json.dumps(list(key.values()), default=str)), (
                    profile.message_from_row(table, row) if row is not None else None)

    def _forget(self, source: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM text_fts WHERE rowid IN (SELECT t.id FROM text t JOIN message m"
                            " ON m.id = t.message WHERE m.source = ?)", (source,))
            self.db.execute("DELETE FROM text WHERE message IN (SELECT id FROM message WHERE source = ?)", (source,))
            for table in ("message", "name"):
                self.db.execute(f"DELETE FROM {table} WHERE source = ?", (source,))
            self.db.execute("DELETE FROM source WHERE name = ?", (source,))

    def _life(self, source: str, msg_id: str) -> tuple[int, str, str | None] | None:
        """The current life of a message: (row id, status, its latest text)."""
        return self.db.execute(
            "SELECT m.id, m.status, (SELECT text FROM text WHERE message = m.id ORDER BY id DESC LIMIT 1)"
            " FROM message m WHERE source = ? AND msg_id = ? ORDER BY id DESC LIMIT 1", (source, msg_id)).fetchone()

    def _new_life(self, source: str, m: Message, version: int) -> int:
        self.db.execute("INSERT INTO message(source, msg_id, conversation, sender, from_me, time, kind, status)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (source, _id(m.id), m.conversation, m.sender, int(m.from_me), m.time, m.kind, PRESENT))
        return self.db.last_insert_rowid()

    def _add_text(self, life: int, text: str, version: int) -> None:
        self.db.execute("INSERT INTO text(message, text, version) VALUES (?, ?, ?)", (life, text, version))
        words, chars = index_columns(text)
        self.db.execute("INSERT INTO text_fts(rowid, words, chars) VALUES (?, ?, ?)",
                        (self.db.last_insert_rowid(), words, chars))

    def _set_status(self, life: int, status: str, version: int) -> None:
        self.db.execute("UPDATE message SET status = ?, status_version = ? WHERE id = ?", (status, version, life))

    def _record(self, source: str, before: Message | None, after: Message | None, version: int) -> None:
        """What one changed row means for the index."""
        if before is None and after is None:
            return
        msg_id = _id((after or before).id)
        life = self._life(source, msg_id)
        if life is not None and life[1] == DELETED:
            life = None  # a key reused after a delete: another message
        if after is None:
            if life is not None:
                self._set_status(life[0], DELETED, version)
            return
        text = indexable(after)
        if life is None:
            if text is not None:
                self._add_text(self._new_life(source, after, version), text, version)
            return
        rowid, status, last = life
        self.db.execute("UPDATE message SET conversation = ?, sender = ?, from_me = ?, time = ?, kind = ?"
                        " WHERE id = ?", (after.conversation, after.sender, int(after.from_me), after.time,
                                          after.kind, rowid))
        if after.kind == RECALLED_KIND:
            if status != RECALLED:
                self._set_status(rowid, RECALLED, version)
        elif text is not None and text != last:
            self._add_text(rowid, text, version)
            if status == PRESENT:
                self._set_status(rowid, EDITED, version)

    def _absorb_whole(self, source: str, profile: AppProfile, version: int) -> None:
        """A version read whole (the first, or one that changed the schema): compare every message."""
        empty = self.db.execute("SELECT 1 FROM message WHERE source = ? LIMIT 1", (source,)).fetchone() is None
        if empty:
            for m in profile.messages():
                text = indexable(m)
                if text is not None:
                    self._add_text(self._new_life(source, m, version), text, version)
            return
        seen = set()
        for m in profile.messages():
            seen.add(_id(m.id))
            self._record(source, None, m, version)
        gone = [(life,) for life, msg_id in self.db.execute(
            "SELECT id, msg_id FROM message WHERE source = ? AND status != ?", (source, DELETED)) if msg_id not in seen]
        for (life,) in gone:
            self._set_status(life, DELETED, version)

    def _names(self, source: str, profile: AppProfile) -> None:
        self.db.execute("DELETE FROM name WHERE source = ?", (source,))
        rows = [(source, "c", c.id, c.name) for c in profile.conversations()]
        rows += [(source, "p", p.id, p.name) for p in profile.participants()]
        self.db.executemany("INSERT OR REPLACE INTO name VALUES (?, ?, ?, ?)", rows)

    # -- searching -----------------------------------------------------------------------

    def search(self, query: str, *, sources: Sequence[str] = (), conversations: Sequence[str] = (),
               apps: Sequence[str] = (), since: int | None = None, until: int | None = None,
               limit: int = DEFAULT_LIMIT) -> list[Hit]:
        """The texts matching `query`, newest indexed first; filters as `syncd search` takes them."""
        match = fts_query(query)
        if match is None:
            return []
        where, args = ["text_fts MATCH ?"], [match]
        for column, values in (("m.source", sources), ("s.app", apps)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args += list(values)
        if conversations:
            ids = self._conversation_ids(conversations, sources)
            where.append(f"m.conversation IN ({', '.join('?' * len(ids))})")
            args += ids
        window, bounds = time_range("m.time", since, until)
        where.append(window)
        args += bounds
        args.append(max(1, min(limit, MAX_LIMIT)))
        rows = self.db.execute(
            "SELECT m.source, s.app, m.msg_id, m.conversation, m.sender, m.from_me, m.time, m.kind, t.text,"
            " t.version, m.status, m.status_version FROM text_fts JOIN text t ON t.id = text_fts.rowid"
            " JOIN message m ON m.id = t.message JOIN source s ON s.name = m.source"
            f" WHERE {' AND '.join(where)} ORDER BY text_fts.rowid DESC LIMIT ?", args).fetchall()
        return list(self._hits(rows, query))

    def _conversation_ids(self, wanted: Sequence[str], sources: Sequence[str]) -> list[str]:
        """Conversations by id or by name."""
        ids = set(wanted)
        for value in wanted:
            ids.update(i for (i, s) in self.db.execute("SELECT id, source FROM name WHERE kind = 'c' AND name = ?",
                                                        (value,)) if not sources or s in sources)
        return sorted(ids)

    def _hits(self, rows: Iterable[tuple], query: str) -> Iterator[Hit]:
        iso, names = IsoTime(), {}

        def name(source: str, kind: str, key: str | None) -> str | None:
            if key is None:
                return None
            if (source, kind, key) not in names:
                found = self.db.execute("SELECT name FROM name WHERE source = ? AND kind = ? AND id = ?",
                                        (source, kind, key)).fetchone()
                names[source, kind, key] = found[0] if found else key
            return names[source, kind, key]

        for source, app, msg_id, conv, sender, from_me, ms, kind, text, version, status, status_version in rows:
            yield Hit(source, app, json.loads(msg_id), conv, name(source, "c", conv) or conv, sender,
                      name(source, "p", sender), bool(from_me), iso(ms), kind, text, version, status,
                      status_version, tuple(hit_spans(text, query)))


def _id(message_id: object) -> str:
    return json.dumps(message_id, ensure_ascii=False, default=str)


def search_archives(archives: Sequence[Archive], query: str, *, pm: pluggy.PluginManager, state: Path,
                    conversations: Sequence[str] = (), apps: Sequence[str] = (), since: int | None = None,
                    until: int | None = None, limit: int = DEFAULT_LIMIT) -> list[Hit]:
    """Bring the index in `state/search` up to date with each archive, then search them (only them)."""
    if fts_query(query) is None:
        raise UsageError(f"{query!r} holds no word to search for", hint="search for words or characters, "
                         "e.g. syncd search --from T 微信")
    index = SearchIndex(Path(state) / "search")
    try:
        for archive in archives:
            index.update(archive, pm)
        return index.search(query, sources=[a.source for a in archives], conversations=conversations, apps=apps,
                            since=since, until=until, limit=limit)
    finally:
        index.close()
