"""WhatsApp: iOS/macOS `ChatStorage.sqlite` (Core Data) and Android `msgstore.db` (new and legacy schemas).

iOS/macOS: `ZWAMESSAGE` (`Z_PK` key, `ZMESSAGEDATE` in seconds since 2001, `ZISFROMME`,
`ZSTANZAID`, `ZMESSAGETYPE`: 14 is a message deleted for everyone), chats in
`ZWACHATSESSION` (`ZCONTACTJID`, `ZPARTNERNAME`), group members in `ZWAGROUPMEMBER`,
push names in `ZWAPROFILEPUSHNAME`, attachments in `ZWAMEDIAITEM` whose `ZMETADATA`
starts with the quoted message's stanza id (protobuf field 5) in a reply. Facts from
the real fixture and WhatsApp-Chat-Exporter's reader (sources.md).

Android: `message` (`_id`, `key_id`, `timestamp` in ms, `message_type`: 15 is revoked),
`chat` and `jid`; before 2022 one `messages` table keyed by `key_remote_jid`. Contact
names live in `wa.db`, another file: a chat shows its group subject or its jid.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from syncd.app import (APPLE_EPOCH_MS, CALL, CONTACT, FILE, IMAGE, LINK, LOCATION, OTHER, RECALLED, STICKER, SYSTEM,
                       TEXT, VIDEO, VOICE, Conversation, Message, MessageTable, Participant, column_names,
                       number_or_none, optional, table_names, text_or_none, time_range)

IOS_KINDS = {0: TEXT, 1: IMAGE, 2: VIDEO, 3: VOICE, 4: CONTACT, 5: LOCATION, 6: SYSTEM, 7: LINK, 8: FILE,
             10: SYSTEM, 11: VIDEO, 14: RECALLED, 15: STICKER, 59: CALL}
ANDROID_KINDS = {0: TEXT, 1: IMAGE, 2: VOICE, 3: VIDEO, 4: CONTACT, 5: LOCATION, 7: SYSTEM, 9: FILE, 13: VIDEO,
                 15: RECALLED, 16: LOCATION, 20: STICKER}
QUOTE_FIELD = 0x2A  # protobuf field 5, length-delimited: the quoted message's stanza id
STANZA_MAX = 64
SHOWS_TEXT = (TEXT, LINK, SYSTEM, IMAGE, VIDEO, FILE, OTHER)  # kinds whose text (or caption) is shown


def quoted_stanza(metadata: object) -> str | None:
    """The stanza id a reply quotes, from the start of ZWAMEDIAITEM.ZMETADATA."""
    if isinstance(metadata, bytes) and len(metadata) > 2 and metadata[0] == QUOTE_FIELD and metadata[1] <= STANZA_MAX:
        raw = metadata[2:2 + metadata[1]]
        if len(raw) == metadata[1] and raw.isascii():
            return raw.decode("ascii")
    return None


def apple_ms(seconds: object) -> int:
    seconds = number_or_none(seconds)
    return APPLE_EPOCH_MS + round(seconds * 1000) if seconds is not None else 0


class WhatsAppIOS:
    """WhatsApp for iOS and macOS: ChatStorage.sqlite."""

    app = "whatsapp"
    summary = "WhatsApp iOS/macOS ChatStorage.sqlite (ZWAMESSAGE, ZWACHATSESSION, ZWAGROUPMEMBER)"

    @classmethod
    def recognises(cls, db) -> bool:
        return ({"Z_PK", "ZCHATSESSION", "ZISFROMME", "ZMESSAGEDATE", "ZTEXT", "ZMESSAGETYPE"}
                <= column_names(db, "ZWAMESSAGE") and {"Z_PK", "ZCONTACTJID"} <= column_names(db, "ZWACHATSESSION"))

    def __init__(self, db):
        self.db = db
        self.columns = column_names(db, "ZWAMESSAGE")
        sessions = column_names(db, "ZWACHATSESSION")
        self.chats = {pk: (text_or_none(jid) or str(pk), text_or_none(name), kind) for pk, jid, name, kind in db.execute(
            f"SELECT Z_PK, ZCONTACTJID, {optional(sessions, 'ZPARTNERNAME')}, {optional(sessions, 'ZSESSIONTYPE')}"
            " FROM ZWACHATSESSION")}
        members = column_names(db, "ZWAGROUPMEMBER")
        self.members = ({pk: text_or_none(jid) for pk, jid in db.execute("SELECT Z_PK, ZMEMBERJID FROM ZWAGROUPMEMBER")}
                        if {"Z_PK", "ZMEMBERJID"} <= members else {})
        me = (db.execute("SELECT ZTOJID FROM ZWAMESSAGE WHERE ZISFROMME = 0 AND ZTOJID LIKE '%@s.whatsapp.net' LIMIT 1")
              .fetchone() if "ZTOJID" in self.columns else None)
        self.me = text_or_none(me[0]) if me else "me"
        self.has_media = {"Z_PK", "ZMEDIALOCALPATH", "ZMETADATA"} <= column_names(db, "ZWAMEDIAITEM")

    def _is_group(self, jid: str, session_type) -> bool:
        return session_type == 1 or jid.endswith("@g.us")

    def conversations(self) -> Iterator[Conversation]:
        for jid, name, kind in self.chats.values():
            yield Conversation(jid, name or jid, self._is_group(jid, kind))

    def participants(self) -> Iterator[Participant]:
        names: dict[str, str] = {}
        if {"ZJID", "ZPUSHNAME"} <= column_names(self.db, "ZWAPROFILEPUSHNAME"):
            names.update((text_or_none(j), text_or_none(n)) for j, n in
                         self.db.execute("SELECT ZJID, ZPUSHNAME FROM ZWAPROFILEPUSHNAME WHERE ZJID IS NOT NULL"))
        member_columns = column_names(self.db, "ZWAGROUPMEMBER")
        if {"ZMEMBERJID", "ZCONTACTNAME"} <= member_columns:
            for jid, name in self.db.execute("SELECT ZMEMBERJID, ZCONTACTNAME FROM ZWAGROUPMEMBER"):
                if jid and name:
                    names[text_or_none(jid)] = text_or_none(name)
        for jid, name, kind in self.chats.values():  # the address book's name for a one-to-one chat
            if name and not self._is_group(jid, kind):
                names[jid] = name
        names.setdefault(self.me, "me")
        for jid in self.members.values():
            if jid:
                names.setdefault(jid, jid)
        for jid, name in names.items():
            yield Participant(jid, name or jid)

    def message_tables(self) -> list[MessageTable]:
        return [MessageTable("ZWAMESSAGE", ("Z_PK",))]

    def _select(self) -> str:
        c = self.columns
        media = ("(SELECT ZMEDIALOCALPATH FROM ZWAMEDIAITEM WHERE Z_PK = m.ZMEDIAITEM),"
                 " (SELECT ZMETADATA FROM ZWAMEDIAITEM WHERE Z_PK = m.ZMEDIAITEM)"
                 if self.has_media and "ZMEDIAITEM" in c else "NULL, NULL")
        return (f"SELECT m.Z_PK, {optional(c, 'ZSTANZAID')}, ZISFROMME, ZMESSAGEDATE, ZTEXT, ZMESSAGETYPE,"
                f" ZCHATSESSION, {optional(c, 'ZGROUPMEMBER')}, {optional(c, 'ZFROMJID')}, {media} FROM ZWAMESSAGE m")

    def _shape(self, pk, stanza, from_me, date, text, msg_type, session, member, from_jid, path, metadata) -> Message:
        jid, _, session_type = self.chats.get(session, (str(session), None, None))
        is_group = self._is_group(jid, session_type)
        from_me = bool(from_me)
        kind = IOS_KINDS.get(msg_type, OTHER)
        if from_me:
            sender = self.me
        elif is_group:
            sender = self.members.get(member) or None
            if sender is None and isinstance(from_jid, str) and from_jid != jid:
                sender = from_jid
        else:
            sender = jid if kind != SYSTEM else None
        text = text_or_none(text) if kind in SHOWS_TEXT else None
        media = (path,) if isinstance(path, str) and path else ()
        return Message(pk, jid, sender, from_me, apple_ms(date), kind, text, media, quoted_stanza(metadata),
                       text_or_none(stanza))

    def messages(self, conversation=None, since=None, until=None) -> Iterator[Message]:
        where, args = time_range("ZMESSAGEDATE", since, until, scale=1000, offset=APPLE_EPOCH_MS)
        if conversation is not None:
            sessions = [pk for pk, (jid, _, _) in self.chats.items() if jid == conversation]
            marks = ",".join("?" * len(sessions)) or "NULL"
            rows = self.db.execute(f"{self._select()} WHERE ZCHATSESSION IN ({marks}) AND {where}"
                                   " ORDER BY ZMESSAGEDATE, m.Z_PK", [*sessions, *args])
        else:
            rows = self.db.execute(f"{self._select()} WHERE {where}", args)
        for row in rows:
            yield self._shape(*row)

    def message_from_row(self, table: str, row: Mapping[str, object]) -> Message | None:
        if table != "ZWAMESSAGE" or row.get("Z_PK") is None:
            return None
        path = metadata = None
        if self.has_media and row.get("ZMEDIAITEM") is not None:
            found = self.db.execute("SELECT ZMEDIALOCALPATH, ZMETADATA FROM ZWAMEDIAITEM WHERE Z_PK = ?",
                                    (row["ZMEDIAITEM"],)).fetchone()
            path, metadata = found or (None, None)
        return self._shape(row["Z_PK"], row.get("ZSTANZAID"), row.get("ZISFROMME"), row.get("ZMESSAGEDATE"),
                           row.get("ZTEXT"), row.get("ZMESSAGETYPE"), row.get("ZCHATSESSION"),
                           row.get("ZGROUPMEMBER"), row.get("ZFROMJID"), path, metadata)


class WhatsAppAndroid:
    """WhatsApp for Android: msgstore.db, the `message`/`chat`/`jid` schema or the legacy `messages` table."""

    app = "whatsapp"
    summary = "WhatsApp Android msgstore.db (message, chat, jid; or the legacy messages table)"
    NEW = {"_id", "chat_row_id", "from_me", "key_id", "timestamp", "message_type", "text_data"}
    LEGACY = {"_id", "key_remote_jid", "key_from_me", "key_id", "data", "timestamp"}

    @classmethod
    def recognises(cls, db) -> bool:
        new = (cls.NEW <= column_names(db, "message") and {"_id", "jid_row_id"} <= column_names(db, "chat")
               and {"_id", "raw_string"} <= column_names(db, "jid"))
        return new or cls.LEGACY <= column_names(db, "messages")

    def __init__(self, db):
        self.db = db
        self.me = "me"
        self.legacy = not (self.NEW <= column_names(db, "message") and "jid" in table_names(db))
        if self.legacy:
            self.columns = column_names(db, "messages")
            self.jids: dict[int, str] = {}
            self.chats: dict[int, str] = {}
            self.subjects = ({text_or_none(j): text_or_none(s) for j, s in
                              db.execute("SELECT key_remote_jid, subject FROM chat_list")}
                             if {"key_remote_jid", "subject"} <= column_names(db, "chat_list") else {})
        else:
            self.columns = column_names(db, "message")
            self.jids = {pk: text_or_none(raw) or str(pk) for pk, raw in db.execute("SELECT _id, raw_string FROM jid")}
            chat_columns = column_names(db, "chat")
            self.chats, self.subjects = {}, {}
            for pk, jid_row, subject in db.execute(f"SELECT _id, jid_row_id, {optional(chat_columns, 'subject')} FROM chat"):
                jid = self.jids.get(jid_row, str(pk))
                self.chats[pk], self.subjects[jid] = jid, text_or_none(subject)
        tables = table_names(db)
        self.media = "message_media" in tables and {"message_row_id", "file_path"} <= column_names(db, "message_media")
        self.quotes = "message_quoted" in tables and {"message_row_id", "key_id"} <= column_names(db, "message_quoted")

    def conversations(self) -> Iterator[Conversation]:
        if self.legacy:
            jids = (text_or_none(j) for (j,) in self.db.execute(
                "SELECT DISTINCT key_remote_jid FROM messages WHERE key_remote_jid IS NOT NULL AND key_remote_jid != '-1'"))
        else:
            jids = iter(self.chats.values())
        for jid in jids:
            yield Conversation(jid, self.subjects.get(jid) or jid, jid.endswith("@g.us"))

    def participants(self) -> Iterator[Participant]:
        yield Participant(self.me, "me")
        if not self.legacy:
            for jid in self.jids.values():
                if not jid.endswith("@g.us"):
                    yield Participant(jid, jid)

    def message_tables(self) -> list[MessageTable]:
        return [MessageTable("messages" if self.legacy else "message", ("_id",))]

    def _select(self) -> str:
        c = self.columns
        if self.legacy:
            return (f"SELECT _id, key_id, key_from_me, timestamp, data, {optional(c, 'media_wa_type', '0')},"
                    f" key_remote_jid, {optional(c, 'remote_resource')}, {optional(c, 'media_name')},"
                    f" {optional(c, 'media_caption')}, NULL FROM messages m")
        media = ("(SELECT file_path FROM message_media WHERE message_row_id = m._id),"
                 " (SELECT media_caption FROM message_media WHERE message_row_id = m._id)"
                 if self.media and "media_caption" in column_names(self.db, "message_media") else
                 "(SELECT file_path FROM message_media WHERE message_row_id = m._id), NULL" if self.media else "NULL, NULL")
        quote = "(SELECT key_id FROM message_quoted WHERE message_row_id = m._id)" if self.quotes else "NULL"
        return (f"SELECT _id, key_id, from_me, timestamp, text_data, message_type, chat_row_id,"
                f" {optional(c, 'sender_jid_row_id')}, {media}, {quote} FROM message m")

    def _shape(self, pk, key_id, from_me, timestamp, text, msg_type, chat, sender, path, caption, quoted) -> Message:
        jid = text_or_none(chat) if self.legacy else self.chats.get(chat, str(chat))
        jid = jid or ""
        kind = ANDROID_KINDS.get(msg_type, OTHER)
        from_me = bool(from_me)
        if from_me:
            who = self.me
        elif self.legacy:
            who = text_or_none(sender) or (jid if not jid.endswith("@g.us") else None)
        else:
            who = self.jids.get(sender) if sender else (jid if not jid.endswith("@g.us") else None)
        text = text_or_none(text) or text_or_none(caption)
        media = (path,) if isinstance(path, str) and path else ()
        return Message(pk, jid, who, from_me, timestamp if isinstance(timestamp, int) else 0, kind,
                       text if kind in SHOWS_TEXT else None, media, text_or_none(quoted), text_or_none(key_id))

    def messages(self, conversation=None, since=None, until=None) -> Iterator[Message]:
        where, args = time_range("timestamp", since, until)
        chat_column = "key_remote_jid" if self.legacy else "chat_row_id"
        skip = "key_remote_jid != '-1'" if self.legacy else "1"
        if conversation is not None:
            keys = [conversation] if self.legacy else [pk for pk, jid in self.chats.items() if jid == conversation]
            marks = ",".join("?" * len(keys)) or "NULL"
            rows = self.db.execute(f"{self._select()} WHERE {chat_column} IN ({marks}) AND {where}"
                                   " ORDER BY timestamp, _id", [*keys, *args])
        else:
            rows = self.db.execute(f"{self._select()} WHERE {skip} AND {where}", args)
        for row in rows:
            yield self._shape(*row)

    def message_from_row(self, table: str, row: Mapping[str, object]) -> Message | None:
        if table not in ("messages" if self.legacy else "message",) or row.get("_id") is None:
            return None
        if self.legacy:
            if row.get("key_remote_jid") == "-1":
                return None
            return self._shape(row["_id"], row.get("key_id"), row.get("key_from_me"), row.get("timestamp"),
                               row.get("data"), row.get("media_wa_type", 0), row.get("key_remote_jid"),
                               row.get("remote_resource"), row.get("media_name"), row.get("media_caption"), None)
        path = caption = quoted = None
        if self.media:
            caption_column = optional(column_names(self.db, "message_media"), "media_caption")
            path, caption = self.db.execute(f"SELECT file_path, {caption_column} FROM message_media"
                                            " WHERE message_row_id = ?", (row["_id"],)).fetchone() or (None, None)
        if self.quotes:
            (quoted,) = self.db.execute("SELECT key_id FROM message_quoted WHERE message_row_id = ?",
                                        (row["_id"],)).fetchone() or (None,)
        return self._shape(row["_id"], row.get("key_id"), row.get("from_me"), row.get("timestamp"),
                           row.get("text_data"), row.get("message_type"), row.get("chat_row_id"),
                           row.get("sender_jid_row_id"), path, caption, quoted)

