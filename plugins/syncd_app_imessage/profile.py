"""iMessage: iOS `sms.db` and macOS `chat.db`.

`message` (`ROWID` key, `guid`, `text`, `attributedBody`, `handle_id`, `date` in ns since
2001, or s before iOS 11, `is_from_me`), `handle` (phone numbers and Apple IDs), `chat`
(`guid`, `display_name`, style 43 for groups) and `chat_message_join`. Newer Messages
versions leave `text` empty and keep it only in `attributedBody`, an NSAttributedString
in Apple's typedstream format: `read_attributed_text` finds its string (sources.md, the
real fixture). An unsent message has `date_retracted` set; an inline reply names the
message it answers in `thread_originator_guid` (`reply_to_guid` only chains a chat's
messages). Contact names live in the Contacts app, not here: a handle shows its number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from syncd.app import (APPLE_EPOCH_MS, OTHER, RECALLED, SYSTEM, TEXT, Conversation, Message, MessageTable,
                       Participant, column_names, media_kind, number_or_none, optional, text_or_none, time_range)

BODY_MAX = 1 << 20  # an attributedBody longer than this is not a chat message's
CLASS_MARK = b"NSString"
STRING_MARK = b"\x84\x01+"  # typedstream: a new object's C string ('+') follows
OBJECT_CHAR = "\ufffc"  # where an attachment sits in the text
NS_DATES = 10**11  # a date above this counts ns (iOS 11 on), below it seconds
GROUP_STYLE = 43


def read_attributed_text(blob: object) -> str | None:
    """The string of an NSAttributedString archived as a typedstream, or None if it isn't one.

    After the NSString class name comes '+' and the UTF-8 byte count: one byte below 0x80,
    or 0x81 and two bytes, or 0x82 and four (little-endian), then the bytes.
    """
    if not isinstance(blob, bytes) or len(blob) > BODY_MAX:
        return None
    start = blob.find(CLASS_MARK)
    if start < 0:
        return None
    mark = blob.find(STRING_MARK, start + len(CLASS_MARK), start + len(CLASS_MARK) + 16)
    if mark < 0:
        return None
    at = mark + len(STRING_MARK)
    if at >= len(blob):
        return None
    first = blob[at]
    if first < 0x80:
        length, at = first, at + 1
    elif first in (0x81, 0x82):
        width = 2 if first == 0x81 else 4
        length, at = int.from_bytes(blob[at + 1:at + 1 + width], "little"), at + 1 + width
    else:
        return None
    if at + length > len(blob):
        return None
    return blob[at:at + length].decode("utf-8", "replace")


def apple_ms(date: object) -> int:
    date = number_or_none(date)
    if date is None:
        return 0
    return APPLE_EPOCH_MS + (int(date // 1_000_000) if date > NS_DATES else int(date * 1000))


class IMessage:
    """Messages on iOS (sms.db) and macOS (chat.db)."""

    app = "imessage"
    summary = "iMessage sms.db / chat.db (message, handle, chat, chat_message_join)"

    @classmethod
    def recognises(cls, db) -> bool:
        return ({"ROWID", "guid", "text", "handle_id", "date", "is_from_me"} <= column_names(db, "message")
                and {"ROWID", "id"} <= column_names(db, "handle") and {"ROWID", "guid"} <= column_names(db, "chat")
                and {"chat_id", "message_id"} <= column_names(db, "chat_message_join"))

    def __init__(self, db):
        self.db = db
        self.columns = column_names(db, "message")
        self.handles = {pk: text_or_none(h) for pk, h in db.execute("SELECT ROWID, id FROM handle")}
        chat_columns = column_names(db, "chat")
        self.chats = {}
        for pk, guid, shown, ident, style in db.execute(
                f"SELECT ROWID, guid, {optional(chat_columns, 'display_name')},"
                f" {optional(chat_columns, 'chat_identifier')}, {optional(chat_columns, 'style')} FROM chat"):
            guid = text_or_none(guid) or str(pk)
            self.chats[pk] = Conversation(guid, text_or_none(shown) or text_or_none(ident) or guid,
                                          style == GROUP_STYLE or ";+;" in guid)
        self.attachments = ({"ROWID", "filename"} <= column_names(db, "attachment")
                            and {"message_id", "attachment_id"} <= column_names(db, "message_attachment_join"))
        self.me = "me"

    def conversations(self) -> Iterator[Conversation]:
        yield from self.chats.values()

    def participants(self) -> Iterator[Participant]:
        yield Participant(self.me, "me")
        for handle in self.handles.values():
            if handle:
                yield Participant(handle, handle)

    def message_tables(self) -> list[MessageTable]:
        return [MessageTable("message", ("ROWID",))]

    def _media(self) -> str:
        if not self.attachments:
            return "NULL, NULL"
        joined = ("FROM message_attachment_join j JOIN attachment a ON a.ROWID = j.attachment_id"
                  " WHERE j.message_id = m.ROWID")
        mime = f"(SELECT a.mime_type {joined} LIMIT 1)" if "mime_type" in column_names(self.db, "attachment") else "NULL"
        return f"(SELECT group_concat(a.filename, char(10)) {joined}), {mime}"

    def _select(self) -> str:
        c = self.columns
        return (f"SELECT m.ROWID, m.guid, m.text, {optional(c, 'attributedBody')}, m.handle_id, m.date, m.is_from_me,"
                " (SELECT chat_id FROM chat_message_join WHERE message_id = m.ROWID LIMIT 1),"
                f" {optional(c, 'item_type', '0')}, {optional(c, 'date_retracted', '0')},"
                f" {optional(c, 'thread_originator_guid')}, {self._media()} FROM message m")

    def _shape(self, pk, guid, text, body, handle, date, from_me, chat, item_type, retracted, reply, files,
               mime) -> Message:
        text = text_or_none(text) or read_attributed_text(body)
        if text is not None:
            text = text.replace(OBJECT_CHAR, "") or None
        media = tuple(f for f in files.split("\n") if f) if isinstance(files, str) else ()
        if retracted:
            kind = RECALLED
        elif item_type:
            kind = SYSTEM
        elif media:
            kind = media_kind(mime)
        else:
            kind = TEXT if text is not None else OTHER
        conversation = self.chats[chat].id if chat in self.chats else str(chat)
        from_me = bool(from_me)
        sender = self.me if from_me else self.handles.get(handle)
        return Message(pk, conversation, sender, from_me, apple_ms(date), kind, text, media, text_or_none(reply),
                       text_or_none(guid))

    def messages(self, conversation=None, since=None, until=None) -> Iterator[Message]:
        # Dates are ns since 2001 in every iOS and macOS of the last years; older seconds match no range.
        where, args = time_range("m.date", since, until, scale=1e-6, offset=APPLE_EPOCH_MS)
        if conversation is not None:
            chats = [pk for pk, chat in self.chats.items() if chat.id == conversation]
            marks = ",".join("?" * len(chats)) or "NULL"
            rows = self.db.execute(
                f"{self._select()} WHERE m.ROWID IN (SELECT message_id FROM chat_message_join WHERE chat_id IN ({marks}))"
                f" AND {where} ORDER BY m.date, m.ROWID", [*chats, *args])
        else:
            rows = self.db.execute(f"{self._select()} WHERE {where}", args)
        for row in rows:
            yield self._shape(*row)

    def message_from_row(self, table: str, row: Mapping[str, object]) -> Message | None:
        if table != "message" or row.get("ROWID") is None:
            return None
        found = self.db.execute(f"{self._select()} WHERE m.ROWID = ?", (row["ROWID"],)).fetchone()
        chat, files, mime = (found[7], found[11], found[12]) if found else (None, None, None)
        return self._shape(row["ROWID"], row.get("guid"), row.get("text"), row.get("attributedBody"),
                           row.get("handle_id"), row.get("date"), row.get("is_from_me"), chat, row.get("item_type", 0),
                           row.get("date_retracted", 0), row.get("thread_originator_guid"), files, mime)

