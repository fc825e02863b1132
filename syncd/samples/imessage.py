"""iMessage (macOS chat.db / iOS sms.db): the sample database and the changes Messages makes."""

from __future__ import annotations

import plistlib
import random
import uuid
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apsw

from ._common import BATCH_ROWS, batched, new_database, pick, random_hex, random_key, recent_key
from .text import ENGLISH, FIRST_NAMES, sentence, text_pool

_APPLE_EPOCH = 978_307_200  # 2001-01-01 in Unix seconds; iMessage dates count ns from here
_IMESSAGE_START_NS = 662_688_000 * 10**9  # 2022-01-01
_IMESSAGE_USER_VERSION = 18026  # the client's schema version, carried as-is by a mirror
_IMESSAGE_ME = "me@icloud.com"

_IMESSAGE_MESSAGE_COLUMNS = """
  ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
  replace INTEGER DEFAULT 0, service_center TEXT, handle_id INTEGER DEFAULT 0, subject TEXT,
  country TEXT, attributedBody BLOB, version INTEGER DEFAULT 0, type INTEGER DEFAULT 0,
  service TEXT, account TEXT, account_guid TEXT, error INTEGER DEFAULT 0, date INTEGER,
  date_read INTEGER, date_delivered INTEGER, is_delivered INTEGER DEFAULT 0,
  is_finished INTEGER DEFAULT 0, is_emote INTEGER DEFAULT 0, is_from_me INTEGER DEFAULT 0,
  is_empty INTEGER DEFAULT 0, is_delayed INTEGER DEFAULT 0, is_auto_reply INTEGER DEFAULT 0,
  is_prepared INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0, is_system_message INTEGER DEFAULT 0,
  is_sent INTEGER DEFAULT 0, has_dd_results INTEGER DEFAULT 0, is_service_message INTEGER DEFAULT 0,
  is_forward INTEGER DEFAULT 0, was_downgraded INTEGER DEFAULT 0, is_archive INTEGER DEFAULT 0,
  cache_has_attachments INTEGER DEFAULT 0, cache_roomnames TEXT, was_data_detected INTEGER DEFAULT 0,
  was_deduplicated INTEGER DEFAULT 0, is_audio_message INTEGER DEFAULT 0, is_played INTEGER DEFAULT 0,
  date_played INTEGER, item_type INTEGER DEFAULT 0, other_handle INTEGER DEFAULT 0, group_title TEXT,
  group_action_type INTEGER DEFAULT 0, share_status INTEGER DEFAULT 0,
  share_direction INTEGER DEFAULT 0, is_expirable INTEGER DEFAULT 0, expire_state INTEGER DEFAULT 0,
  message_action_type INTEGER DEFAULT 0, message_source INTEGER DEFAULT 0,
  associated_message_guid TEXT, associated_message_type INTEGER DEFAULT 0, balloon_bundle_id TEXT,
  payload_data BLOB, expressive_send_style_id TEXT,
  associated_message_range_location INTEGER DEFAULT 0,
  associated_message_range_length INTEGER DEFAULT 0, time_expressive_send_played INTEGER,
  message_summary_info BLOB, ck_sync_state INTEGER DEFAULT 0, ck_record_id TEXT,
  ck_record_change_tag TEXT, destination_caller_id TEXT, is_corrupt INTEGER DEFAULT 0,
  reply_to_guid TEXT, sort_id INTEGER, is_spam INTEGER DEFAULT 0, has_unseen_mention INTEGER DEFAULT 0,
  thread_originator_guid TEXT, thread_originator_part TEXT, syndication_ranges TEXT,
  synced_syndication_ranges TEXT, was_delivered_quietly INTEGER DEFAULT 0,
  did_notify_recipient INTEGER DEFAULT 0, date_retracted INTEGER DEFAULT 0,
  date_edited INTEGER DEFAULT 0, was_detonated INTEGER DEFAULT 0, part_count INTEGER,
  is_stewie INTEGER DEFAULT 0, is_kt_verified INTEGER DEFAULT 0, is_sos INTEGER DEFAULT 0,
  is_critical INTEGER DEFAULT 0, bia_reference_id TEXT DEFAULT NULL, fallback_hash TEXT DEFAULT NULL,
  associated_message_emoji TEXT DEFAULT NULL, is_pending_satellite_send INTEGER DEFAULT 0,
  needs_relay INTEGER DEFAULT 0, schedule_type INTEGER DEFAULT 0, schedule_state INTEGER DEFAULT 0,
  sent_or_received_off_grid INTEGER DEFAULT 0"""

_IMESSAGE_SCHEMA = f"""
CREATE TABLE _SqliteDatabaseProperties (key TEXT, value TEXT, UNIQUE(key));
CREATE TABLE deleted_messages (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, guid TEXT NOT NULL);
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, country TEXT,
  service TEXT NOT NULL, uncanonicalized_id TEXT, person_centric_id TEXT, UNIQUE (id, service));
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER,
  state INTEGER, account_id TEXT, properties BLOB, chat_identifier TEXT, service_name TEXT,
  room_name TEXT, account_login TEXT, is_archived INTEGER DEFAULT 0, last_addressed_handle TEXT,
  display_name TEXT, group_id TEXT, is_filtered INTEGER DEFAULT 0, successful_query INTEGER,
  last_read_message_timestamp INTEGER DEFAULT 0);
CREATE TABLE message ({_IMESSAGE_MESSAGE_COLUMNS});
CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
  created_date INTEGER DEFAULT 0, start_date INTEGER DEFAULT 0, filename TEXT, uti TEXT,
  mime_type TEXT, transfer_state INTEGER DEFAULT 0, is_outgoing INTEGER DEFAULT 0, user_info BLOB,
  transfer_name TEXT, total_bytes INTEGER DEFAULT 0, is_sticker INTEGER DEFAULT 0,
  sticker_user_info BLOB, attribution_info BLOB, hide_attachment INTEGER DEFAULT 0,
  ck_sync_state INTEGER DEFAULT 0, ck_server_change_token_blob BLOB, ck_record_id TEXT,
  original_guid TEXT UNIQUE NOT NULL);
CREATE TABLE chat_handle_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  handle_id INTEGER REFERENCES handle (ROWID) ON DELETE CASCADE, UNIQUE(chat_id, handle_id));
CREATE TABLE chat_message_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE, message_date INTEGER DEFAULT 0,
  PRIMARY KEY (chat_id, message_id));
CREATE TABLE message_attachment_join (message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE,
  attachment_id INTEGER REFERENCES attachment (ROWID) ON DELETE CASCADE, UNIQUE(message_id, attachment_id));
CREATE INDEX message_idx_handle ON message(handle_id, date);
CREATE INDEX message_idx_is_read ON message(is_read, is_from_me, is_finished);
CREATE INDEX message_idx_associated_message ON message(associated_message_guid);
CREATE INDEX chat_message_join_idx_message_id_only ON chat_message_join(message_id);
CREATE INDEX chat_message_join_idx_message_date_id_chat_id ON chat_message_join(chat_id, message_date, message_id);
CREATE INDEX message_attachment_join_idx_message_id ON message_attachment_join(message_id);
CREATE INDEX chat_idx_chat_identifier_service_name ON chat(chat_identifier, service_name);
CREATE TRIGGER add_to_deleted_messages AFTER DELETE ON message BEGIN
  INSERT INTO deleted_messages (guid) VALUES (OLD.guid); END;
CREATE TRIGGER after_delete_on_message AFTER DELETE ON message BEGIN
  DELETE FROM chat_message_join WHERE message_id = OLD.ROWID;
  DELETE FROM message_attachment_join WHERE message_id = OLD.ROWID; END;
CREATE TRIGGER after_delete_on_message_attachment_join AFTER DELETE ON message_attachment_join BEGIN
  DELETE FROM attachment WHERE attachment.ROWID = OLD.attachment_id
    AND (SELECT 1 FROM message_attachment_join WHERE attachment_id = OLD.attachment_id LIMIT 1) IS NULL; END;
"""
_IMESSAGE_INSERT_MESSAGE = (
    "INSERT INTO message (ROWID, guid, text, handle_id, attributedBody, service, account, account_guid,"
    " date, date_read, date_delivered, is_delivered, is_finished, is_from_me, is_read, is_sent,"
    " has_dd_results, cache_has_attachments, associated_message_guid, associated_message_type,"
    " destination_caller_id, part_count, sort_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,?,?,?,?,?,?,1,0)")
_IMESSAGE_TAPBACKS = ((2000, "Loved"), (2001, "Liked"), (2003, "Laughed at"), (2004, "Emphasized"))
_GROUP_TITLES = ("Weekend Plans", "Family", "Book Club", "Roommates", "", "")


class _IMessageChat(NamedTuple):
    rowid: int
    handles: tuple[int, ...]  # handle ROWIDs of the other participants
    service: str


def _typedstream(text: str) -> bytes:
    """An NSAttributedString archived the way Messages stores `attributedBody`."""
    def length(n: int) -> bytes:
        if n < 0x80:
            return bytes([n])
        return b"\x81" + n.to_bytes(2, "little") if n < 0x10000 else b"\x82" + n.to_bytes(4, "little")
    data = text.encode()
    return (b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttributedString\x00\x84\x84"
            b"\x08NSObject\x00\x85\x92\x84\x84\x84\x08NSString\x01\x94\x84\x01+" + length(len(data)) + data
            + b"\x86\x84\x02iI\x01" + length(len(text.encode("utf-16-le")) // 2)
            + b"\x92\x84\x84\x84\x0cNSDictionary\x00\x94\x84\x01i\x01\x92\x84\x96\x96\x1d"
              b"__kIMMessagePartAttributeName\x86\x92\x84\x84\x84\x08NSNumber\x00\x84\x84\x07NSValue"
              b"\x00\x94\x84\x01*\x84\x99\x99\x00\x86\x86\x86")


def _apple_guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def _imessage_contacts(db: apsw.Connection, rng: random.Random, chats: int) -> list[_IMessageChat]:
    """Fill handle, chat, chat_handle_join and the properties table; return the chats."""
    handles = _imessage_handles(db, rng, max(2, chats + 2))
    partners = iter(rng.sample(handles, len(handles)))  # one direct chat per handle
    result = [_imessage_group_chat(db, rng, chat_id, handles) if chat_id % 4 == 0  # every fourth is a group
              else _imessage_direct_chat(db, rng, chat_id, next(partners))
              for chat_id in range(1, chats + 1)]
    for chat in result:
        db.executemany("INSERT INTO chat_handle_join VALUES (?,?)", [(chat.rowid, h) for h in chat.handles])
    db.executemany("INSERT INTO _SqliteDatabaseProperties VALUES (?,?)", [
        ("counter_in_all", "0"), ("_ClientVersion", str(_IMESSAGE_USER_VERSION)),
        ("_UniqueIdentifier", _apple_guid(rng))])
    return result


def _imessage_handles(db: apsw.Connection, rng: random.Random, count: int) -> list[tuple[int, str, str]]:
    """(ROWID, id, service) of `count` new handles: mostly phone numbers, some Apple IDs."""
    rows = []
    for rowid in range(1, count + 1):
        if rng.random() < 0.7:
            number = f"+1{rng.randint(200, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            rows.append((rowid, number, "us", "SMS" if rng.random() < 0.1 else "iMessage"))
        else:
            email = f"{FIRST_NAMES[rowid % len(FIRST_NAMES)]}{rng.randint(1, 99)}@icloud.com"
            rows.append((rowid, email, None, "iMessage"))
    db.executemany("INSERT INTO handle (ROWID, id, country, service) VALUES (?,?,?,?)", rows)
    return [(rowid, handle, service) for rowid, handle, _, service in rows]


def _imessage_direct_chat(db: apsw.Connection, rng: random.Random, chat_id: int,
                          partner: tuple[int, str, str]) -> _IMessageChat:
    handle_id, handle, service = partner
    db.execute("INSERT INTO chat (ROWID, guid, style, state, account_id, chat_identifier, service_name,"
               " account_login, display_name) VALUES (?,?,45,3,?,?,?,?,'')",
               (chat_id, f"{service};-;{handle}", _apple_guid(rng), handle, service, f"E:{_IMESSAGE_ME}"))
    return _IMessageChat(chat_id, (handle_id,), service)


def _imessage_group_chat(db: apsw.Connection, rng: random.Random, chat_id: int,
                         handles: list[tuple[int, str, str]]) -> _IMessageChat:
    members = sorted(rng.sample([rowid for rowid, _, _ in handles], min(len(handles), rng.randint(2, 5))))
    room = f"chat{rng.randint(10**17, 10**18 - 1)}"
    db.execute("INSERT INTO chat (ROWID, guid, style, state, account_id, chat_identifier, service_name,"
               " room_name, account_login, display_name, group_id) VALUES (?,?,43,3,?,?,'iMessage',?,?,?,?)",
               (chat_id, f"iMessage;+;{room}", _apple_guid(rng), room, room, f"E:{_IMESSAGE_ME}",
                pick(rng, _GROUP_TITLES), _apple_guid(rng)))
    return _IMessageChat(chat_id, tuple(members), "iMessage")


def _imessage_load_chats(db: apsw.Connection) -> list[_IMessageChat]:
    members: dict[int, list[int]] = {}
    for chat_id, handle_id in db.execute("SELECT chat_id, handle_id FROM chat_handle_join ORDER BY rowid"):
        members.setdefault(chat_id, []).append(handle_id)
    return [_IMessageChat(rowid, tuple(members.get(rowid, ())), service)
            for rowid, service in db.execute("SELECT ROWID, service_name FROM chat ORDER BY ROWID")]


class _IMessageComposer:
    """Builds message, chat_message_join and attachment rows as Messages stores them."""

    def __init__(self, rng: random.Random, texts: tuple[str, ...], account_guid: str):
        self._rng, self._texts, self._account_guid = rng, texts, account_guid
        self._recent: dict[int, str] = {}  # chat ROWID -> guid of its latest message, for tapbacks

    def message(self, rowid: int, chat: _IMessageChat, date: int) -> tuple[tuple, tuple, tuple | None]:
        """(message row, chat_message_join row, attachment row or None) for a new message."""
        rng = self._rng
        from_me = rng.random() < 0.45
        handle = chat.handles[0] if len(chat.handles) == 1 else (0 if from_me else pick(rng, chat.handles or (0,)))
        guid = _apple_guid(rng)
        kind = rng.random()
        associated_guid, associated_type, attachment = None, 0, None
        if kind < 0.03 and chat.rowid in self._recent:
            code, verb = pick(rng, _IMESSAGE_TAPBACKS)
            associated_guid, associated_type = f"p:0/{self._recent[chat.rowid]}", code
            text = f"{verb} “{pick(rng, self._texts)}”"
        elif kind < 0.08:
            text = "\ufffc"  # the attachment's placeholder character in the text
            attachment = self._attachment(rowid, from_me, date)
        else:
            text = pick(rng, self._texts)
        self._recent[chat.rowid] = guid
        date_read = 0 if from_me else date + rng.randint(1, 3600) * 10**9
        date_delivered = date + rng.randint(1, 5) * 10**9 if from_me else 0
        # In the column order of _IMESSAGE_INSERT_MESSAGE.
        message = (rowid, guid, text, handle, _typedstream(text), chat.service, f"E:{_IMESSAGE_ME}",
                   self._account_guid, date, date_read, date_delivered, 1, int(from_me), int(not from_me),
                   int(from_me), int("http" in text), int(attachment is not None), associated_guid,
                   associated_type, _IMESSAGE_ME)
        return message, (chat.rowid, rowid, date), attachment

    def _attachment(self, message_id: int, from_me: bool, date: int) -> tuple:
        rng = self._rng
        guid = _apple_guid(rng)
        name = f"IMG_{rng.randint(1000, 9999)}.HEIC"
        path = f"~/Library/Messages/Attachments/{random_hex(rng, 1)}/{rng.randint(0, 15):02d}/{guid}/{name}"
        return (guid, date // 10**9, date // 10**9, path, "public.heic", "image/heic", 5, int(from_me), name,
                rng.randint(200_000, 4_000_000), guid, message_id)


def _imessage_stream(rng: random.Random, composer: _IMessageComposer, chats: list[_IMessageChat],
                     first_rowid: int, count: int, date: int) -> Iterator[tuple[tuple, tuple, tuple | None]]:
    """`count` messages after `date`, in random chats, a minute and a half apart on average."""
    for rowid in range(first_rowid, first_rowid + count):
        date += (1 + int(rng.expovariate(1 / 90))) * 10**9
        yield composer.message(rowid, pick(rng, chats), date)


def _imessage_write(db: apsw.Connection, composed: Iterable[tuple[tuple, tuple, tuple | None]]) -> None:
    """Insert composed messages with their join and attachment rows, in batches."""
    for batch in batched(composed, BATCH_ROWS):
        db.executemany(_IMESSAGE_INSERT_MESSAGE, [message for message, _, _ in batch])
        db.executemany("INSERT INTO chat_message_join VALUES (?,?,?)", [join for _, join, _ in batch])
        for *attachment, message_id in (a for _, _, a in batch if a):
            db.execute("INSERT INTO attachment (guid, created_date, start_date, filename, uti, mime_type,"
                       " transfer_state, is_outgoing, transfer_name, total_bytes, original_guid)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?)", attachment)
            db.execute("INSERT INTO message_attachment_join VALUES (?,?)", (message_id, db.last_insert_rowid()))


def create_imessage(path, *, messages=200, chats=8, seed=0) -> None:
    """iMessage chat.db-like database: message, handle, chat, join tables, attachments, triggers."""
    rng = random.Random(seed)
    with new_database(path, user_version=_IMESSAGE_USER_VERSION) as db:
        with db:
            db.execute(_IMESSAGE_SCHEMA)
            chat_list = _imessage_contacts(db, rng, chats)
            texts = text_pool(rng, ENGLISH, [n.title() for n in FIRST_NAMES], 8192)
            composer = _IMessageComposer(rng, texts, _apple_guid(rng))
            if chat_list:
                _imessage_write(db, _imessage_stream(rng, composer, chat_list, 1, messages, _IMESSAGE_START_NS))


def imessage_new_messages(db: apsw.Connection, rng: random.Random, n: int) -> list[int]:
    """Send and receive `n` messages in random chats. Returns their ROWIDs."""
    chats = _imessage_load_chats(db)
    if not chats:
        raise LookupError("no chat to write to")
    # AUTOINCREMENT never reuses a ROWID, even after the newest message was deleted.
    next_rowid, date = db.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'message'), 0),"
        " coalesce((SELECT max(ROWID) FROM message), 0)) + 1, (SELECT max(date) FROM message)").fetchone()
    account = db.execute("SELECT account_guid FROM message WHERE account_guid IS NOT NULL LIMIT 1").fetchone()
    texts = text_pool(rng, ENGLISH, [n.title() for n in FIRST_NAMES], 32 + n)
    composer = _IMessageComposer(rng, texts, account[0] if account else _apple_guid(rng))
    composed = list(_imessage_stream(rng, composer, chats, next_rowid, n, date or _IMESSAGE_START_NS))
    with db:
        _imessage_write(db, composed)
    return list(range(next_rowid, next_rowid + n))


def imessage_edit(db: apsw.Connection, rng: random.Random, rowid: int | None = None) -> int:
    """Edit one of our own messages as iOS 16+ does. Returns its ROWID.

    `text` becomes NULL, `attributedBody` holds the new text, `date_edited` is set and
    `message_summary_info` (a binary plist) keeps every version under "ec".
    """
    with db:
        if rowid is None:
            rowid = recent_key(db, rng, "message", "ROWID",
                                "is_from_me = 1 AND associated_message_type = 0 AND cache_has_attachments = 0")
        date, body, summary = db.execute(
            "SELECT date, attributedBody, message_summary_info FROM message WHERE ROWID = ?", (rowid,)).fetchone()
        info = plistlib.loads(summary) if summary else {"ec": {"0": [{"d": date / 1e9 + _APPLE_EPOCH, "t": body}]}}
        # Messages allows edits within 15 minutes of sending.
        edited = date + rng.randint(5, 900) * 10**9
        new_body = _typedstream(sentence(rng, ENGLISH, tuple(n.title() for n in FIRST_NAMES)))
        info["ec"]["0"].append({"d": edited / 1e9 + _APPLE_EPOCH, "t": new_body})
        info["ep"], info["otr"] = [0], {"0": {"le": len(info["ec"]["0"]), "lo": 0}}
        db.execute("UPDATE message SET text = NULL, attributedBody = ?, date_edited = ?,"
                   " message_summary_info = ? WHERE ROWID = ?",
                   (new_body, edited, plistlib.dumps(info, fmt=plistlib.FMT_BINARY), rowid))
    return rowid


def imessage_delete(db: apsw.Connection, rng: random.Random, rowid: int | None = None) -> int:
    """Delete a message; the schema's triggers drop its joins and log its guid. Returns its ROWID."""
    with db:
        if rowid is None:
            rowid = random_key(db, rng, "message", "ROWID")
        db.execute("DELETE FROM message WHERE ROWID = ?", (rowid,))
    return rowid
