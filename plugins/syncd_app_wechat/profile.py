"""WeChat: Android `EnMicroMsg.db` (decrypted) and iOS `message_N.sqlite` / `MM.sqlite` shards.

Android keeps every message in one `message` table (`msgId` key, `createTime` in ms,
`talker` the chat's username, `isSend`), contacts in `rcontact` and group names in
`chatroom`. A group message someone else sent starts with their username and ":\\n".
A recall rewrites the row in place into type 10000 "… 撤回了一条消息" (design.md §4;
sources.md "Search in Chinese").

iOS spreads an account over several files: `message_1..N.sqlite`, each with one
`Chat_<md5(username)>` table per chat (`MesLocalID` key, `CreateTime` in s, `Message`,
`Type`, `Des` 0 sent / 1 received), and contacts in `MM.sqlite` `Friend`. Each file is
archived as a source of its own, so each shard reads alone: a chat's name is the
username from a `Friend` table in the same file when there is one, else its md5;
`MM.sqlite` alone gives the participants. (Joining shards with the contact file is
left to a reader that opens several sources at once.)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping

from syncd.app import (CALL, CONTACT, FILE, IMAGE, LINK, LOCATION, OTHER, RECALLED, STICKER, SYSTEM, TEXT, VIDEO,
                       VOICE, Conversation, Message, MessageTable, Participant, column_names, number_or_none, optional,
                       quote, table_names, text_or_none, time_range)

KINDS = {1: TEXT, 3: IMAGE, 34: VOICE, 42: CONTACT, 43: VIDEO, 47: STICKER, 48: LOCATION, 49: LINK,
         50: CALL, 62: VIDEO, 64: CALL, 10000: SYSTEM, 10002: SYSTEM}
RECALL_MARKS = ("撤回了一条消息", "recalled a message", 'type="revokemsg"')
SYSTEM_TYPES = (10000, 10002)
# How far into a link message's XML its title and quoted id are looked for: bounded work per row.
XML_SCAN = 8192
APPMSG_FILE, APPMSG_QUOTE = "6", "57"
IOS_CHAT_TABLE = re.compile(r"^Chat_([0-9a-f]{32})$")
IOS_COLUMNS = {"MesLocalID", "CreateTime", "Message", "Type", "Des"}


def kind_of(msg_type: object, content: str | None) -> str:
    kind = KINDS.get(msg_type, OTHER) if isinstance(msg_type, int) else OTHER
    if msg_type in SYSTEM_TYPES and content and any(mark in content[:XML_SCAN] for mark in RECALL_MARKS):
        return RECALLED
    return kind


def between(text: str, start: str, end: str) -> str | None:
    """The text between the first `start` and the next `end` in the first XML_SCAN characters."""
    head = text[:XML_SCAN]
    i = head.find(start)
    if i < 0:
        return None
    j = head.find(end, i + len(start))
    return head[i + len(start):j] if j >= 0 else None


def appmsg(content: str) -> tuple[str, str | None, str | None]:
    """(kind, title, quoted msgSvrId) of a type-49 message's XML: a link, a file or a quote."""
    sub = between(content, "<type>", "</type>")
    title = between(content, "<title>", "</title>")
    if sub == APPMSG_QUOTE:
        return TEXT, title, between(content, "<svrid>", "</svrid>")
    return (FILE if sub == APPMSG_FILE else LINK), title, None


def split_group_text(content: str | None) -> tuple[str | None, str | None]:
    """(sender, text) of a received group message: WeChat prefixes the sender's username."""
    if content:
        head, sep, rest = content.partition(":\n")
        if sep and 0 < len(head) <= 64 and " " not in head and "<" not in head:
            return head, rest
    return None, content


def shape(msg_id, server_id, msg_type, is_send, time_ms, conversation, content, img_path, me,
          is_group) -> Message:
    """A Message from the columns both WeChat layouts share."""
    content = text_or_none(content)
    from_me = bool(is_send)
    if from_me:
        sender, text = me, content
    elif is_group and msg_type not in SYSTEM_TYPES:
        sender, text = split_group_text(content)
    else:
        sender, text = (None if msg_type in SYSTEM_TYPES else conversation), content
    kind = KINDS.get(msg_type, OTHER) if msg_type != 1 else TEXT
    reply = None
    if kind == TEXT:
        pass
    elif msg_type in SYSTEM_TYPES:
        kind = kind_of(msg_type, text)
    elif kind == LINK and text:
        kind, text, reply = appmsg(text)
    elif kind != OTHER:
        text = None  # XML or a voice length: what the app shows is the media, not this
    media = (img_path,) if isinstance(img_path, str) and img_path else ()
    return Message(msg_id, conversation, sender, from_me, time_ms, kind, text, media, reply,
                   str(server_id) if server_id else None)


class WeChatAndroid:
    """WeChat for Android: EnMicroMsg.db (decrypted) with message, rcontact and chatroom."""

    app = "wechat"
    summary = "WeChat Android EnMicroMsg.db (message, rcontact, chatroom)"

    @classmethod
    def recognises(cls, db) -> bool:
        return ({"msgId", "type", "createTime", "talker", "content", "isSend"} <= column_names(db, "message")
                and "username" in column_names(db, "rcontact"))

    def __init__(self, db):
        self.db = db
        self.columns = column_names(db, "message")
        me = db.execute("SELECT value FROM userinfo WHERE id = 2").fetchone() if "userinfo" in table_names(db) else None
        self.me = text_or_none(me[0]) if me and me[0] else "me"

    def _names(self) -> dict[str, str]:
        contacts = column_names(self.db, "rcontact")
        remark = "nullif(conRemark, ''), " if "conRemark" in contacts else ""
        nick = "nullif(nickname, ''), " if "nickname" in contacts else ""
        return {text_or_none(u): text_or_none(n) for u, n in
                self.db.execute(f"SELECT username, coalesce({remark}{nick}username) FROM rcontact")}

    def conversations(self) -> Iterator[Conversation]:
        names = self._names()
        if "chatroom" in table_names(self.db) and "displayname" in column_names(self.db, "chatroom"):
            # A group without a name of its own is shown by its members' names.
            for room, shown in self.db.execute("SELECT chatroomname, displayname FROM chatroom"):
                if names.get(room) in (None, room) and shown:
                    names[room] = text_or_none(shown)
        for (talker,) in self.db.execute("SELECT DISTINCT talker FROM message WHERE talker IS NOT NULL"):
            talker = text_or_none(talker)
            yield Conversation(talker, names.get(talker) or talker, talker.endswith("@chatroom"))

    def participants(self) -> Iterator[Participant]:
        names = self._names()
        names.setdefault(self.me, "me")
        for username, name in names.items():
            yield Participant(username, name or username)

    def message_tables(self) -> list[MessageTable]:
        return [MessageTable("message", ("msgId",))]

    def _select(self) -> str:
        return (f"SELECT msgId, {optional(self.columns, 'msgSvrId')}, type, isSend, createTime, talker, content,"
                f" {optional(self.columns, 'imgPath')} FROM message")

    def messages(self, conversation=None, since=None, until=None) -> Iterator[Message]:
        where, args = time_range("createTime", since, until)
        if conversation is not None:
            rows = self.db.execute(f"{self._select()} WHERE talker = ? AND {where} ORDER BY createTime, msgId",
                                   [conversation, *args])
        else:
            rows = self.db.execute(f"{self._select()} WHERE {where}", args)
        me = self.me
        new_tuple = tuple.__new__  # Message(...) goes through a Python-level __new__: a tenth of an export
        for msg_id, server_id, msg_type, is_send, create_time, talker, content, img_path in rows:
            # Plain text, four rows in five, takes the short way (same result as `shape`).
            if msg_type == 1 and type(talker) is str and type(content) is str and type(create_time) is int:
                if is_send:
                    sender, text = me, content
                elif talker.endswith("@chatroom"):
                    sender, text = split_group_text(content)
                else:
                    sender, text = talker, content
                yield new_tuple(Message, (msg_id, talker, sender, bool(is_send), create_time, TEXT, text,
                                          (img_path,) if type(img_path) is str and img_path else (), None,
                                          str(server_id) if server_id else None))
                continue
            talker = text_or_none(talker) or ""
            yield shape(msg_id, server_id, msg_type, is_send, create_time if isinstance(create_time, int) else 0,
                        talker, content, img_path, me, talker.endswith("@chatroom"))

    def message_from_row(self, table: str, row: Mapping[str, object]) -> Message | None:
        if table != "message" or row.get("msgId") is None:
            return None
        talker = text_or_none(row.get("talker")) or ""
        create_time = row.get("createTime")
        return shape(row["msgId"], row.get("msgSvrId"), row.get("type"), row.get("isSend"),
                     create_time if isinstance(create_time, int) else 0, talker, row.get("content"),
                     row.get("imgPath"), self.me, talker.endswith("@chatroom"))


class WeChatIOS:
    """WeChat for iOS: one message_N.sqlite shard (Chat_<md5> tables), or MM.sqlite's Friend table."""

    app = "wechat"
    summary = "WeChat iOS message_N.sqlite shards (Chat_<md5>) and MM.sqlite (Friend)"

    @classmethod
    def recognises(cls, db) -> bool:
        if {"UsrName", "NickName"} <= column_names(db, "Friend"):
            return True
        return any(IOS_CHAT_TABLE.match(t) and IOS_COLUMNS <= column_names(db, t) for t in table_names(db))

    def __init__(self, db):
        self.db = db
        self.chats = {}  # md5 → table
        for table in sorted(table_names(db)):
            match = IOS_CHAT_TABLE.match(table)
            if match and IOS_COLUMNS <= column_names(db, table):
                self.chats[match.group(1)] = table
        self.friends: dict[str, tuple[str, str]] = {}  # md5(username) → (username, name)
        if {"UsrName", "NickName"} <= column_names(db, "Friend"):
            for username, nickname in db.execute("SELECT UsrName, NickName FROM Friend"):
                username = text_or_none(username)
                if username:
                    name = text_or_none(nickname) or username
                    self.friends[hashlib.md5(username.encode()).hexdigest()] = (username, name)

    def _is_group(self, md5: str) -> bool:
        if md5 in self.friends:
            return self.friends[md5][0].endswith("@chatroom")
        # No contact file here: a chat whose received messages name their sender is a group.
        rows = self.db.execute(f"SELECT Message FROM {quote(self.chats[md5])} WHERE Des = 1 AND Type = 1 LIMIT 20")
        texts = [text_or_none(m) for (m,) in rows]
        return bool(texts) and all(split_group_text(t)[0] for t in texts)

    def conversations(self) -> Iterator[Conversation]:
        for md5 in self.chats:
            username, name = self.friends.get(md5, (md5, md5))
            yield Conversation(md5, name, self._is_group(md5))

    def participants(self) -> Iterator[Participant]:
        for username, name in self.friends.values():
            yield Participant(username, name)

    def message_tables(self) -> list[MessageTable]:
        return [MessageTable(table, ("MesLocalID",)) for table in self.chats.values()]

    def _shape(self, md5, local_id, server_id, msg_type, des, create_time, content, is_group) -> Message:
        seconds = number_or_none(create_time) or 0
        return shape(f"{md5}:{local_id}", server_id, msg_type, des == 0, int(seconds * 1000), md5, content,
                     None, "me", is_group)

    def messages(self, conversation=None, since=None, until=None) -> Iterator[Message]:
        where, args = time_range("CreateTime", since, until, scale=1000)
        for md5, table in self.chats.items():
            if conversation is not None and md5 != conversation:
                continue
            columns = column_names(self.db, table)
            is_group = self._is_group(md5)
            rows = self.db.execute(f"SELECT MesLocalID, {optional(columns, 'MesSvrID')}, Type, Des, CreateTime,"
                                   f" Message FROM {quote(table)} WHERE {where} ORDER BY CreateTime, MesLocalID", args)
            for local_id, server_id, msg_type, des, create_time, content in rows:
                yield self._shape(md5, local_id, server_id, msg_type, des, create_time, content, is_group)

    def message_from_row(self, table: str, row: Mapping[str, object]) -> Message | None:
        match = IOS_CHAT_TABLE.match(table)
        if not match or row.get("MesLocalID") is None:
            return None
        md5 = match.group(1)
        return self._shape(md5, row["MesLocalID"], row.get("MesSvrID"), row.get("Type"), row.get("Des"),
                           row.get("CreateTime"), row.get("Message"), md5 in self.chats and self._is_group(md5))

