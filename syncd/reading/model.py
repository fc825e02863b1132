"""A version of one source, read as conversations and messages through its app profile.

`Reading` is what every renderer takes: the conversations and names it shows, and the
messages it selects (filters), each with its status and earlier texts. History (kept
by the next layer) comes in as `Annotations`: without them every message is "present".
A database no profile recognises reads as a generic table view (`tables()`).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import apsw
import pluggy

from ..app import AppProfile, Conversation, Message, quote, table_names, text_or_none
from ..errors import ArchiveError
from ..media.links import MediaLinks
from ..plugins import profile_for

PRESENT, EDITED, RECALLED, DELETED = "present", "edited", "recalled", "deleted"
STATUSES = (PRESENT, EDITED, RECALLED, DELETED)


@dataclass(frozen=True)
class Filters:
    """What to export: conversations and participants by id or by name; [since, until) in ms since 1970 UTC."""

    conversations: tuple[str, ...] = ()
    participants: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True)
class MessageHistory:
    """A message's life across versions, as the history layer knows it."""

    status: str = PRESENT
    # Earlier texts, oldest first: {"text": …, "version": n, "time": "…Z"}.
    earlier: tuple[Mapping[str, object], ...] = ()
    # The text to show instead of the row's own: a recalled message's text before the recall.
    text: str | None = None


@dataclass(frozen=True)
class Annotations:
    """What the history layer adds to a version: per message id, and the messages no longer in it."""

    history: Mapping[object, MessageHistory] = field(default_factory=dict)
    deleted: Sequence[Message] = ()  # gone from this version; kept from earlier ones (status "deleted")
    # When messages were first seen, (version, "…Z"): by id for those first seen after version 1,
    # `first_version` for every other one; None when no history is known.
    first_seen: Mapping[object, tuple[int, str]] = field(default_factory=dict)
    first_version: tuple[int, str] | None = None


NO_HISTORY = MessageHistory()
DELETED_HISTORY = MessageHistory(DELETED)


def open_database(path: Path) -> apsw.Connection:
    """A read-only connection to a restored database: no file beside it is created, and what its
    schema holds (it came from a target) can't call anything but SQLite's innocuous functions."""
    uri = Path(path).absolute().as_uri() + "?immutable=1"
    try:
        db = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    except apsw.Error as e:
        raise ArchiveError(f"can't open the restored database: {e}") from None
    db.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
    db.config(apsw.SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0)
    db.config(apsw.SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0)
    return db


class Reading:
    """One source's version, read: what a renderer needs, and nothing it must know about the app."""

    def __init__(self, db: apsw.Connection, source: str, pm: pluggy.PluginManager, filters: Filters = Filters(),
                 annotations: Annotations = Annotations()):
        self.db, self.source, self.filters, self.annotations = db, source, filters, annotations
        self.media: MediaLinks | None = None  # the version's media listing, when one was archived (set by export)
        cls = profile_for(pm, db)
        self.profile: AppProfile | None = cls(db) if cls else None
        self.app = cls.app if cls else None
        if self.profile is None:
            self.all_conversations, self.names = {}, {}
            return
        self.all_conversations = {c.id: c for c in self.profile.conversations()}
        for message in annotations.deleted:  # a whole chat deleted on the phone still reads
            self.all_conversations.setdefault(message.conversation,
                                              Conversation(message.conversation, message.conversation, False))
        self.names = {p.id: p.name for p in self.profile.participants()}
        self._senders = self._match(filters.participants, self.names) if filters.participants else None

    @staticmethod
    def _match(wanted: Sequence[str], names: Mapping[str, str]) -> set[str]:
        """The ids whose id or name is one of `wanted`."""
        wanted = set(wanted)
        return {pid for pid, name in names.items() if pid in wanted or name in wanted} | (wanted - set(names.values()))

    def conversations(self) -> list[Conversation]:
        """The conversations the filters select, in the app's order."""
        if not self.filters.conversations:
            return list(self.all_conversations.values())
        wanted = set(self.filters.conversations)
        return [c for c in self.all_conversations.values() if c.id in wanted or c.name in wanted]

    def messages(self, conversation: str | None = None) -> Iterator[Message]:
        """The selected messages: one conversation's in time order, or all in storage order then the deleted ones."""
        assert self.profile is not None
        f = self.filters
        if not self.annotations.deleted and self._senders is None and (conversation or not f.conversations):
            return self.profile.messages(conversation, f.since, f.until)  # nothing to add or drop: no extra layer
        return self._selected(conversation)

    def _selected(self, conversation: str | None) -> Iterator[Message]:
        f = self.filters
        if conversation is None and f.conversations:
            for c in self.conversations():
                yield from self._selected(c.id)
            return
        present = self.profile.messages(conversation, f.since, f.until)
        gone = [m for m in self.annotations.deleted if (conversation is None or m.conversation == conversation)
                and (f.since is None or m.time >= f.since) and (f.until is None or m.time < f.until)]
        if conversation is not None:
            stream = heapq.merge(present, sorted(gone, key=lambda m: m.time), key=lambda m: m.time) if gone else present
        else:
            stream = itertools.chain(present, gone)
        senders = self._senders
        if senders is None:
            yield from stream
        else:
            yield from (m for m in stream if m.sender in senders)

    def history_of(self, message: Message) -> MessageHistory:
        history = self.annotations.history
        found = history.get(message.id) if history else None
        if found is not None:
            return found
        return DELETED_HISTORY if self.annotations.deleted and message in self._deleted_set() else NO_HISTORY

    def first_seen_of(self, message: Message) -> tuple[int, str] | None:
        """(version, time) of the version the message first appeared in, when history is known."""
        found = self.annotations.first_seen.get(message.id)
        return found if found is not None else self.annotations.first_version

    def _deleted_set(self) -> set:
        if not hasattr(self, "_deleted"):
            self._deleted = set(self.annotations.deleted)
        return self._deleted

    def conversation_name(self, conversation: str) -> str:
        found = self.all_conversations.get(conversation)
        return found.name if found else conversation

    def tables(self) -> Iterator[tuple[str, list[str], Iterator[tuple]]]:
        """The generic view of a database no profile knows: (table, columns, rows) of each table."""
        for table in sorted(table_names(self.db)):
            if table.startswith("sqlite_"):
                continue
            columns = [row[1] for row in self.db.execute("SELECT * FROM pragma_table_info(?)", (table,))]
            if columns:
                yield table, columns, self.db.execute(f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)}")


class IsoTime:
    """ms since 1970 → "2019-03-01T08:00:01Z" (".123" before the Z when there are ms).

    The date part is formatted once per day, the clock and the milliseconds looked up in
    tables built once (86,400 + 1,000 strings): gmtime and strftime for every message
    would be a third of a JSONL export's time, and arithmetic formatting a sixth.
    """

    _clock: list[str] = []
    _millis: list[str] = []

    def __init__(self):
        self._day, self._date = None, ""
        if not IsoTime._clock:
            IsoTime._clock = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
            IsoTime._millis = ["Z"] + [f".{ms:03d}Z" for ms in range(1, 1000)]
        self.clock, self.millis = IsoTime._clock, IsoTime._millis

    def __call__(self, ms: int) -> str:
        second, rest = divmod(ms, 1000)
        day, clock = divmod(second, 86_400)
        if day != self._day:
            try:
                self._date = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
            except (OverflowError, OSError, ValueError):  # a hostile or damaged time
                self._date = "0000-00-00T"
            self._day = day
        return self._date + self.clock[clock] + self.millis[rest]


def display_text(message: Message, history: MessageHistory) -> str | None:
    """What a reader sees: a recalled message shows the text it had before the recall."""
    return history.text if history.text is not None else text_or_none(message.text)
