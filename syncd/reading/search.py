"""`syncd search`: every text every message ever had, in every source and version, Chinese included.

The index is derived data in one SQLite file (`<state>/search/index.sqlite`, 0600), built
from each source's history (`<state>/history/`, history.py): the events it recorded for
each version (new, edit, recall, delete) are what the index adds, so a hit's status is
the one an export gives the message.

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

Each version costs what its events hold, and history reads a version at the cost of its
changeset (changes.py). Everything is rebuilt from a target alone when the state dir is new.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import apsw
import pluggy

from ..app import RECALLED as RECALLED_KIND, AppProfile, Message, time_range
from ..archive.plain import Archive
from ..errors import UsageError
from ..fsutil import private_dirs, private_opener
from ..readback.restore import read_manifest
from .history import DELETE, NEW, RECALL, history_folder, open_history
from .model import DELETED, EDITED, PRESENT, RECALLED, IsoTime
from .segment import TOKENIZER, fts_query, hit_spans, index_columns

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
    until: int | None  # the version whose edit replaced this text; None: the message's last text (kept if deleted)
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
    """The search index in `folder` (created 0700), covering every source it was updated with; built from
    the sources' histories in `history` (default: `history/` beside `folder`, as `syncd export --state` keeps them)."""

    def __init__(self, folder: Path, history: Path | None = None):
        self.folder = Path(folder)
        self.history_folder = Path(history) if history is not None else self.folder.parent / "history"
        private_dirs(self.folder)
        private_dirs(self.history_folder)
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
        """Bring the source's history up to date, then index its events not indexed yet; returns how
        many versions that indexed."""
        source = archive.source
        manifest = read_manifest(archive)
        versions = manifest.versions
        found = self.db.execute("SELECT version, hash FROM source WHERE name = ?", (source,)).fetchone()
        done, chained = found or (0, None)
        history = open_history(self.history_folder, source)
        try:
            history.update(archive, pm, manifest)
            if done and (done > len(versions) or versions[done - 1].hash != chained):
                self._forget(source)  # rewritten, or another archive under this name: index anew
                done = 0
            if done == len(versions):
                return 0
            profile, copy = history.profile(pm)
            try:
                with self.db:
                    for mkey, version, what, message in history.events(done):
                        self._record(source, mkey, what, message, version)
                    if profile is not None:
                        self._names(source, profile)
                    self.db.execute("INSERT OR REPLACE INTO source VALUES (?, ?, ?, ?)",
                                    (source, profile.app if profile else None, len(versions), versions[-1].hash))
            finally:
                copy.close()
        finally:
            history.close()
        return len(versions) - done

    def _forget(self, source: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM text_fts WHERE rowid IN (SELECT t.id FROM text t JOIN message m"
                            " ON m.id = t.message WHERE m.source = ?)", (source,))
            self.db.execute("DELETE FROM text WHERE message IN (SELECT id FROM message WHERE source = ?)", (source,))
            for table in ("message", "name"):
                self.db.execute(f"DELETE FROM {table} WHERE source = ?", (source,))
            self.db.execute("DELETE FROM source WHERE name = ?", (source,))

    def _life(self, source: str, msg_id: str) -> tuple[int, str, str | None] | None:
        """The current life of a message (none after a delete): (row id, status, its latest text)."""
        found = self.db.execute(
            "SELECT m.id, m.status, (SELECT text FROM text WHERE message = m.id ORDER BY id DESC LIMIT 1)"
            " FROM message m WHERE source = ? AND msg_id = ? ORDER BY id DESC LIMIT 1", (source, msg_id)).fetchone()
        return None if found is None or found[1] == DELETED else found

    def _new_life(self, source: str, msg_id: str, m: Message) -> int:
        self.db.execute("INSERT INTO message(source, msg_id, conversation, sender, from_me, time, kind, status)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (source, msg_id, m.conversation, m.sender, int(m.from_me), m.time, m.kind, PRESENT))
        return self.db.last_insert_rowid()

    def _add_text(self, life: int, text: str, version: int) -> None:
        self.db.execute("INSERT INTO text(message, text, version) VALUES (?, ?, ?)", (life, text, version))
        words, chars = index_columns(text)
        self.db.execute("INSERT INTO text_fts(rowid, words, chars) VALUES (?, ?, ?)",
                        (self.db.last_insert_rowid(), words, chars))

    def _set_status(self, life: int, status: str, version: int) -> None:
        self.db.execute("UPDATE message SET status = ?, status_version = ? WHERE id = ?", (status, version, life))

    def _record(self, source: str, msg_id: str, what: str, message: Message, version: int) -> None:
        """What one history event means for the index: its statuses are history's."""
        life = None if what == NEW else self._life(source, msg_id)
        if what == DELETE or what == RECALL:
            if life is not None and life[1] != DELETED:
                self._set_status(life[0], DELETED if what == DELETE else RECALLED, version)
            return
        text = indexable(message)
        if life is None:  # new, or an edit that gave a text to a message that had none
            if text is not None:
                self._add_text(self._new_life(source, msg_id, message), text, version)
            return
        rowid, status, last = life
        self.db.execute("UPDATE message SET conversation = ?, sender = ?, from_me = ?, time = ?, kind = ?"
                        " WHERE id = ?", (message.conversation, message.sender, int(message.from_me), message.time,
                                          message.kind, rowid))
        if text is not None and text != last:
            self._add_text(rowid, text, version)
            if status == PRESENT:
                self._set_status(rowid, EDITED, version)

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
            " t.version, m.status, m.status_version,"
            " (SELECT min(later.version) FROM text later WHERE later.message = t.message AND later.id > t.id)"
            " FROM text_fts JOIN text t ON t.id = text_fts.rowid"
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

        for source, app, msg_id, conv, sender, from_me, ms, kind, text, version, status, status_version, until in rows:
            yield Hit(source, app, json.loads(msg_id), conv, name(source, "c", conv) or conv, sender,
                      name(source, "p", sender), bool(from_me), iso(ms), kind, text, version, status,
                      status_version, until, tuple(hit_spans(text, query)))


@contextmanager
def index_search(archives: Sequence[Archive], pm: pluggy.PluginManager, root: Path):
    """A `search(source, query, limit)` over the index in `root/search` (histories in `root/history`),
    which brings the source's index up to date first (a no-op when no version is new)."""
    index = SearchIndex(Path(root) / "search", history_folder(root))
    by_source = {a.source: a for a in archives}

    def search(source: str, query: str, limit: int = DEFAULT_LIMIT) -> list[Hit]:
        index.update(by_source[source], pm)
        return index.search(query, sources=[source], limit=limit)

    try:
        yield search
    finally:
        index.close()


def search_archives(archives: Sequence[Archive], query: str, *, pm: pluggy.PluginManager, state: Path,
                    conversations: Sequence[str] = (), apps: Sequence[str] = (), since: int | None = None,
                    until: int | None = None, limit: int = DEFAULT_LIMIT) -> list[Hit]:
    """Bring the index in `state/search` up to date with each archive, then search them (only them)."""
    if fts_query(query) is None:
        raise UsageError(f"{query!r} holds no word to search for", hint="search for words or characters, "
                         "e.g. syncd search --from T 微信")
    index = SearchIndex(Path(state) / "search", history_folder(state))
    try:
        for archive in archives:
            index.update(archive, pm)
        return index.search(query, sources=[a.source for a in archives], conversations=conversations, apps=apps,
                            since=since, until=until, limit=limit)
    finally:
        index.close()
