"""The app seam: what turns one chat app's tables into conversations, participants and messages.

An *app profile* (from a plugin, like storage backends and source kinds; see
`syncd.plugins`) knows one app's schema. `recognises(db)` looks at the tables
and columns only; `cls(db)` opens the profile on an apsw connection to a
restored database (read-only, private to syncd) and its readers stream the
model below. Readers, renderers, history and search see only the model.

Contract (tests/test_app_profiles.py checks the built-in profiles field by field):
- `recognises(db)` reads the schema only, is cheap, and tolerates app versions
  that add or drop columns: it names the few tables and columns the profile
  cannot do without. Columns a profile can do without are read when present.
- `conversations()`, `participants()` and `messages(conversation, since, until)`
  stream: memory stays flat whatever the number of messages. `messages` yields
  one conversation's messages in time order when `conversation` is given, and
  every message in the app's storage order (the cheapest) otherwise.
  `since` and `until` are ms since 1970 UTC, `since <= time < until`.
- `message_tables()` names the tables that hold messages and their key columns;
  `message_from_row(table, row)` turns one row of such a table (a column → value
  mapping, as a changeset carries it) into a Message, or None when the row is not
  a message. The history layer maps changesets of those tables through it.
- A recall is a row the app rewrote in place: its Message has `kind == RECALLED`
  (WeChat's type 10000 "撤回了一条消息", WhatsApp's revoked types, iMessage's
  unsend). The text it had before lives only in earlier versions.
- Everything read is hostile: text is passed on as text, never interpreted;
  blobs are decoded by bounded readers; a value of an unexpected type becomes
  None or its string form, never an exception that stops an export.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Protocol, runtime_checkable

import apsw

# What a message is, across apps: the renderers and search use these words.
TEXT, IMAGE, VOICE, VIDEO, STICKER, FILE, LINK = "text", "image", "voice", "video", "sticker", "file", "link"
LOCATION, CONTACT, CALL, SYSTEM, RECALLED, OTHER = "location", "contact", "call", "system", "recalled", "other"
KINDS = (TEXT, IMAGE, VOICE, VIDEO, STICKER, FILE, LINK, LOCATION, CONTACT, CALL, SYSTEM, RECALLED, OTHER)

APPLE_EPOCH_MS = 978_307_200_000  # 2001-01-01T00:00:00Z: Core Data and iMessage count from here


@dataclass(frozen=True, slots=True)
class Conversation:
    """A chat: one person, a group, or a system account."""

    id: str  # the app's own id for it: a username, a jid, a chat guid
    name: str  # what the app shows; the id when the app has no name for it
    is_group: bool


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone who writes: a contact or a group member, with the name the app shows."""

    id: str
    name: str


class Message(NamedTuple):
    """One message as the app stores it, in one model for every app.

    A NamedTuple rather than a frozen dataclass: as immutable and hashable, and built
    four times faster, which an export of a million messages feels (docs/export.md).
    """

    id: int | str  # the app's own key of the row (msgId, Z_PK, ROWID…): what history tracks
    conversation: str  # Conversation.id
    sender: str | None  # Participant.id; None when the app doesn't say (a system notice)
    from_me: bool
    time: int  # ms since 1970-01-01 UTC
    kind: str  # one of KINDS
    text: str | None
    media: tuple[str, ...] = ()  # the app's references to attachments (paths, file names)
    reply_to: str | None = None  # the server_id of the message it quotes, where the app records one
    server_id: str | None = None  # the id the protocol gives it (msgSvrId, stanza id, guid), where there is one


@dataclass(frozen=True, slots=True)
class MessageTable:
    """A table that holds messages, and the columns that key its rows."""

    table: str
    key: tuple[str, ...]


@runtime_checkable
class AppProfile(Protocol):
    """One app's schema, read as the model: see the module docstring for the contract."""

    app: ClassVar[str]  # "wechat", "whatsapp", "imessage", "signal"…: what exports name
    summary: ClassVar[str]  # one line: the files it reads

    @classmethod
    def recognises(cls, db: apsw.Connection) -> bool: ...

    def __init__(self, db: apsw.Connection) -> None: ...

    def conversations(self) -> Iterator[Conversation]: ...

    def participants(self) -> Iterator[Participant]: ...

    def messages(self, conversation: str | None = None, since: int | None = None,
                 until: int | None = None) -> Iterator[Message]: ...

    def message_tables(self) -> list[MessageTable]: ...

    def message_from_row(self, table: str, row: Mapping[str, object]) -> Message | None: ...


# -- helpers profiles share: reading a schema that versions change -------------------------


def table_names(db: apsw.Connection) -> set[str]:
    """The names of the tables in the main database (virtual and shadow tables included)."""
    return {name for (name,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}


def column_names(db: apsw.Connection, table: str) -> set[str]:
    """The columns of `table`, or an empty set when there is no such table."""
    return {row[1] for row in db.execute("SELECT * FROM pragma_table_info(?)", (table,))}


def has_columns(db: apsw.Connection, table: str, needed: Iterable[str]) -> bool:
    return set(needed) <= column_names(db, table)


def quote(name: str) -> str:
    """An SQL identifier, quoted whatever characters it holds (table names come from the database)."""
    return '"' + name.replace('"', '""') + '"'


def optional(columns: set[str], name: str, default: str = "NULL") -> str:
    """`name` quoted if the table has it, else `default`: for columns some app versions lack."""
    return quote(name) if name in columns else default


def text_or_none(value: object) -> str | None:
    """A text column's value as text: apps (and hostile archives) sometimes store other types."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def number_or_none(value: object) -> int | float | None:
    """A numeric column's value as a finite number, else None: SQLite keeps ±Inf in a REAL column,
    and apps (and hostile archives) store text or blobs where a time belongs."""
    if isinstance(value, int) or isinstance(value, float) and math.isfinite(value):
        return value
    return None


def media_kind(mime: object) -> str:
    """The kind of an attachment from its MIME type (what iMessage and Signal record)."""
    mime = mime if isinstance(mime, str) else ""
    for prefix, kind in (("image/", IMAGE), ("video/", VIDEO), ("audio/", VOICE)):
        if mime.startswith(prefix):
            return kind
    return FILE


def time_range(column: str, since: int | None, until: int | None, scale: float = 1.0,
               offset: int = 0) -> tuple[str, list]:
    """An SQL condition on `column` for [since, until) given in ms since 1970, where the column
    holds `(ms - offset) / scale` (seconds: scale 1000; Apple ns: offset APPLE_EPOCH_MS, scale 1e-6)."""
    clauses, args = [], []
    if since is not None:
        clauses.append(f"{column} >= ?")
        args.append((since - offset) / scale)
    if until is not None:
        clauses.append(f"{column} < ?")
        args.append((until - offset) / scale)
    return " AND ".join(clauses) or "1", args
