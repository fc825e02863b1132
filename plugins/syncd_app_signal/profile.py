"""Signal Desktop: `db.sqlite` (decrypted), `messages` and `conversations` with a `json` column.

A message row carries `id` (a UUID), `conversationId`, `sent_at` (ms), `type`
('incoming', 'outgoing', or a notice such as 'group-v2-change'), `body`, and the rest in
`json`: `attachments` (contentType, path), `quote.id` (the quoted message's sent_at),
`deletedForEveryone` (or the `isErased` column) for a message its sender deleted.
Senders are `sourceServiceId` (older: `sourceUuid`, or `source`, a phone number).
Where a column is missing, the value is read from `json`, and malformed JSON reads as null.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from syncd.app import (OTHER, RECALLED, SYSTEM, TEXT, Conversation, Message, MessageTable,
                       Participant, column_names, media_kind, text_or_none, time_range)

FROM_ME, TO_ME = "outgoing", "incoming"
JSON_MAX = 1 << 20  # a message's json longer than this is not read


def json_field(columns: set[str], column: str, path: str) -> str:
    """The column if the table has it, else the value at `path` of a well-formed json column."""
    extracted = f"CASE WHEN json_valid(json) THEN json_extract(json, '{path}') END"
    return f"coalesce({column}, {extracted})" if column in columns else extracted


def from_json(path: str) -> str:
    return f"CASE WHEN json_valid(json) THEN json_extract(json, '{path}') END"


def first_of(columns: set[str], *names: str) -> str:
    present = [n for n in names if n in columns]
    return f"coalesce({', '.join(present)})" if len(present) > 1 else present[0] if present else "NULL"


class SignalDesktop:
    """Signal Desktop's db.sqlite."""

    app = "signal"
    summary = "Signal Desktop db.sqlite (messages, conversations; json columns)"

    @classmethod
    def recognises(cls, db) -> bool:
        return ({"id", "json", "conversationId", "type"} <= column_names(db, "messages")
                and {"id", "json", "type"} <= column_names(db, "conversations"))

    def __init__(self, db):
        self.db = db
        self.columns = column_names(db, "messages")
        c = column_names(db, "conversations")
        name = f"coalesce(nullif({first_of(c, 'name', 'profileFullName', 'profileName', 'e164')}, ''),"
        name += " CASE WHEN json_valid(json) THEN json_extract(json, '$.name') END)"
        self.people, self.chats = {}, {}
        for pk, kind, shown, person in db.execute(
                f"SELECT id, type, {name}, {first_of(c, 'serviceId', 'uuid', 'e164')} FROM conversations"):
            pk = text_or_none(pk) or ""
            self.chats[pk] = Conversation(pk, text_or_none(shown) or pk, kind == "group")
            if kind == "private" and person:
                self.people[text_or_none(person)] = text_or_none(shown) or text_or_none(person)
        keys = [row[1] for row in sorted((r[5], r[1]) for r in db.execute("SELECT * FROM pragma_table_info('messages')")
                                         if r[5])]
        self.key = tuple(keys) or ("rowid",)
        self.me = "me"

    def conversations(self) -> Iterator[Conversation]:
        yield from self.chats.values()

    def participants(self) -> Iterator[Participant]:
        yield Participant(self.me, "me")
        for person, name in self.people.items():
            yield Participant(person, name)

    def message_tables(self) -> list[MessageTable]:
        return [MessageTable("messages", self.key)]

    def _select(self) -> str:
        c = self.columns
        attachments = ("(SELECT group_concat(json_extract(value, '$.path'), char(10))"
                       " FROM json_each(messages.json, '$.attachments'))")
        return (f"SELECT id, conversationId, type, {json_field(c, 'sent_at', '$.sent_at')},"
                f" {json_field(c, 'body', '$.body')}, {first_of(c, 'sourceServiceId', 'sourceUuid', 'source')},"
                f" {from_json('$.quote.id')}, {from_json('$.deletedForEveryone')},"
                f" {'isErased' if 'isErased' in c else '0'}, {from_json('$.attachments[0].contentType')},"
                f" CASE WHEN json_valid(json) THEN {attachments} END FROM messages")

    def _shape(self, pk, conversation, msg_type, sent_at, body, source, quote, deleted, erased, mime,
               paths) -> Message:
        from_me = msg_type == FROM_ME
        media = tuple(p for p in paths.split("\n") if p) if isinstance(paths, str) else ()
        if deleted or erased:
            kind = RECALLED
        elif msg_type not in (FROM_ME, TO_ME):
            kind = SYSTEM
        elif media:
            kind = media_kind(mime)
        else:
            kind = TEXT if body else OTHER
        sender = self.me if from_me else (text_or_none(source) if msg_type == TO_ME else None)
        time = sent_at if isinstance(sent_at, int) else 0
        return Message(text_or_none(pk) or "", text_or_none(conversation) or "", sender, from_me, time, kind,
                       text_or_none(body), media, text_or_none(quote), str(time) if time else None)

    def messages(self, conversation=None, since=None, until=None) -> Iterator[Message]:
        time_column = "sent_at" if "sent_at" in self.columns else "json_extract(json, '$.sent_at')"
        where, args = time_range(time_column, since, until)
        if conversation is not None:
            rows = self.db.execute(f"{self._select()} WHERE conversationId = ? AND {where}"
                                   f" ORDER BY {time_column}, rowid", [conversation, *args])
        else:
            rows = self.db.execute(f"{self._select()} WHERE {where}", args)
        for row in rows:
            yield self._shape(*row)

    def message_from_row(self, table: str, row: Mapping[str, object]) -> Message | None:
        if table != "messages" or row.get("id") is None:
            return None
        extra = parse_json(row.get("json"))
        quote = extra.get("quote") if isinstance(extra.get("quote"), dict) else {}
        attachments = [a for a in extra.get("attachments") or () if isinstance(a, dict)] \
            if isinstance(extra.get("attachments"), list) else []
        paths = "\n".join(a["path"] for a in attachments if isinstance(a.get("path"), str))
        pick = lambda column, key: row[column] if row.get(column) is not None else extra.get(key)  # noqa: E731
        return self._shape(row["id"], row.get("conversationId"), row.get("type"), pick("sent_at", "sent_at"),
                           pick("body", "body"),
                           row.get("sourceServiceId") or row.get("sourceUuid") or row.get("source"),
                           quote.get("id"), extra.get("deletedForEveryone"), row.get("isErased", 0),
                           attachments[0].get("contentType") if attachments else None, paths)


def parse_json(value: object) -> dict:
    """A json column as a dict; anything else (too long, malformed, not an object) as {}."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or len(value) > JSON_MAX:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}

