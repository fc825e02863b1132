"""WhatsApp (Android msgstore.db): the sample database and the changes WhatsApp makes."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apsw

from ._common import BATCH_ROWS, batched, new_database, pick, random_hex, recent_key
from .text import ENGLISH, FIRST_NAMES, text_pool

WHATSAPP_TEXT, WHATSAPP_IMAGE, WHATSAPP_VOICE, WHATSAPP_SYSTEM, WHATSAPP_REVOKED = 0, 1, 2, 7, 15
_WHATSAPP_USER_VERSION = 1
_WHATSAPP_START_MS = 1_640_995_200_000  # 2022-01-01

_WHATSAPP_SCHEMA = """
CREATE TABLE props (_id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE, value TEXT);
CREATE TABLE jid (_id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, server TEXT NOT NULL,
  agent INTEGER, device INTEGER, type INTEGER, raw_string TEXT);
CREATE UNIQUE INDEX jid_key_new_index ON jid (user, server, agent, device);
CREATE TABLE chat (_id INTEGER PRIMARY KEY AUTOINCREMENT, jid_row_id INTEGER UNIQUE, hidden INTEGER,
  subject TEXT, created_timestamp INTEGER, display_message_row_id INTEGER, last_message_row_id INTEGER,
  last_read_message_row_id INTEGER, last_read_receipt_sent_message_row_id INTEGER,
  last_important_message_row_id INTEGER, archived INTEGER, sort_timestamp INTEGER, mod_tag INTEGER,
  gen REAL, spam_detection INTEGER, unseen_earliest_message_received_time INTEGER,
  unseen_message_count INTEGER, unseen_missed_calls_count INTEGER, unseen_row_count INTEGER,
  plaintext_disabled INTEGER, vcard_ui_dismissed INTEGER, change_number_notified_message_row_id INTEGER,
  show_group_description INTEGER, ephemeral_expiration INTEGER, last_read_ephemeral_message_row_id INTEGER,
  ephemeral_setting_timestamp INTEGER, unseen_important_message_count INTEGER NOT NULL DEFAULT 0,
  group_type INTEGER NOT NULL DEFAULT 0);
CREATE TABLE message (_id INTEGER PRIMARY KEY AUTOINCREMENT, chat_row_id INTEGER NOT NULL,
  from_me INTEGER NOT NULL, key_id TEXT NOT NULL, sender_jid_row_id INTEGER, status INTEGER,
  broadcast INTEGER, recipient_count INTEGER, participant_hash TEXT, origination_flags INTEGER,
  origin INTEGER, timestamp INTEGER, received_timestamp INTEGER, receipt_server_timestamp INTEGER,
  message_type INTEGER, text_data TEXT, starred INTEGER, lookup_tables INTEGER,
  sort_id INTEGER NOT NULL DEFAULT 0, message_add_on_flags INTEGER, view_mode INTEGER);
CREATE UNIQUE INDEX message_key_index ON message (chat_row_id, from_me, key_id, sender_jid_row_id);
CREATE INDEX message_sort_id_index ON message (chat_row_id, sort_id);
CREATE INDEX message_starred_index ON message (starred, chat_row_id);
CREATE TABLE message_media (message_row_id INTEGER PRIMARY KEY, chat_row_id INTEGER,
  autotransfer_retry_enabled INTEGER, multicast_id TEXT, media_job_uuid TEXT, transferred INTEGER,
  transcoded INTEGER, file_path TEXT, file_size INTEGER, suspicious_content INTEGER, trim_from INTEGER,
  trim_to INTEGER, face_x INTEGER, face_y INTEGER, media_key BLOB, media_key_timestamp INTEGER,
  width INTEGER, height INTEGER, has_streaming_sidecar INTEGER, gif_attribution INTEGER,
  thumbnail_height_width_ratio REAL, direct_path TEXT, first_scan_sidecar BLOB, first_scan_length INTEGER,
  message_url TEXT, mime_type TEXT, file_length INTEGER, media_name TEXT, file_hash TEXT,
  media_duration INTEGER, page_count INTEGER, enc_file_hash TEXT, partial_media_hash TEXT,
  partial_media_enc_hash TEXT, is_animated_sticker INTEGER, original_file_hash TEXT,
  mute_video INTEGER DEFAULT 0, media_caption TEXT);
CREATE INDEX message_media_chat_index ON message_media (chat_row_id, message_row_id);
CREATE TABLE group_participant_user (_id INTEGER PRIMARY KEY AUTOINCREMENT,
  group_jid_row_id INTEGER NOT NULL, user_jid_row_id INTEGER NOT NULL, rank INTEGER NOT NULL,
  pending INTEGER NOT NULL, add_timestamp INTEGER, add_type INTEGER, label TEXT);
CREATE UNIQUE INDEX group_participant_user_index ON group_participant_user (group_jid_row_id, user_jid_row_id);
CREATE TABLE message_revoked (message_row_id INTEGER PRIMARY KEY, revoked_key_id TEXT NOT NULL,
  admin_jid_row_id INTEGER, revoke_timestamp INTEGER);
CREATE VIRTUAL TABLE message_ftsv2 USING fts5(content, fts_jid, fts_namespace);
"""
_WHATSAPP_INSERT_MESSAGE = (
    "INSERT INTO message (_id, chat_row_id, from_me, key_id, sender_jid_row_id, status, broadcast,"
    " recipient_count, origination_flags, origin, timestamp, received_timestamp, receipt_server_timestamp,"
    " message_type, text_data, starred, lookup_tables, sort_id, message_add_on_flags)"
    " VALUES (?1,?2,?3,?4,?5,?6,0,0,0,0,?7,?8,?9,?10,?11,?12,0,?1,0)")
_WHATSAPP_INSERT_MEDIA = (
    "INSERT INTO message_media (message_row_id, chat_row_id, autotransfer_retry_enabled, transferred,"
    " file_path, file_size, media_key, media_key_timestamp, width, height, thumbnail_height_width_ratio,"
    " direct_path, mime_type, file_length, file_hash, media_duration, enc_file_hash, media_caption)"
    " VALUES (?,?,1,1,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_WHATSAPP_SUBJECTS = ("Family ❤️", "Football Sunday", "Flat 4B", "Class of 2012", "Book club")
# Status codes: 0 received; for our own messages 4 on the server, 5 delivered, 13 read.
_WHATSAPP_SENT_STATUSES = (4, 5, 5, 13, 13, 13)


class _WhatsAppChat(NamedTuple):
    rowid: int
    jid: str  # raw jid string of the chat
    members: tuple[int, ...]  # jid rows of group members; () for a one-to-one chat


def _whatsapp_contacts(db: apsw.Connection, rng: random.Random, chats: int) -> list[_WhatsAppChat]:
    """Fill jid, chat, group_participant_user and props; return the chats."""
    people = _whatsapp_people(db, rng, max(2, chats * 2))
    result = []
    for index in range(chats):
        created = _WHATSAPP_START_MS - rng.randint(1, 900) * 86_400_000 + index * 1000
        if index % 4 == 3:  # every fourth chat is a group
            jid_row, raw, members = _whatsapp_group(db, rng, people, created)
            subject = pick(rng, _WHATSAPP_SUBJECTS)
        else:
            (jid_row, raw), members, subject = people[index], (), None
        db.execute("INSERT INTO chat (jid_row_id, hidden, subject, created_timestamp, archived, sort_timestamp,"
                   " gen, unseen_message_count, unseen_row_count, plaintext_disabled) VALUES (?,0,?,?,0,?,?,0,0,1)",
                   (jid_row, subject, created, created, float(rng.randint(1, 3))))
        result.append(_WhatsAppChat(db.last_insert_rowid(), raw, members))
    db.executemany("INSERT INTO props (key, value) VALUES (?,?)", [
        ("fts_ready", "5"), ("md_messages_migrated", "1"), ("message_main_verified", "1"),
        ("db_creation_timestamp", str(_WHATSAPP_START_MS))])
    return result


def _whatsapp_people(db: apsw.Connection, rng: random.Random, count: int) -> list[tuple[int, str]]:
    """(jid _id, raw jid) of `count` new phone-number jids."""
    people = []
    for _ in range(count):
        user = f"{pick(rng, ('1', '44', '49', '55', '91', '86'))}{rng.randint(10**9, 10**10 - 1)}"
        db.execute("INSERT INTO jid (user, server, agent, device, type, raw_string)"
                   " VALUES (?,'s.whatsapp.net',0,0,0,?)", (user, f"{user}@s.whatsapp.net"))
        people.append((db.last_insert_rowid(), f"{user}@s.whatsapp.net"))
    return people


def _whatsapp_group(db: apsw.Connection, rng: random.Random, people: list[tuple[int, str]],
                    created: int) -> tuple[int, str, tuple[int, ...]]:
    """(jid _id, raw jid, member jid _ids) of a new group, named after its creator and creation time."""
    members = sorted(rng.sample([jid_row for jid_row, _ in people], min(len(people), rng.randint(3, 8))))
    user = f"{people[0][1].split('@')[0]}-{created // 1000}"
    db.execute("INSERT INTO jid (user, server, agent, device, type, raw_string) VALUES (?,'g.us',0,0,1,?)",
               (user, f"{user}@g.us"))
    jid_row = db.last_insert_rowid()
    db.executemany("INSERT INTO group_participant_user (group_jid_row_id, user_jid_row_id, rank, pending,"
                   " add_timestamp) VALUES (?,?,0,0,?)", [(jid_row, m, created) for m in members])
    return jid_row, f"{user}@g.us", tuple(members)


def _whatsapp_load_chats(db: apsw.Connection) -> list[_WhatsAppChat]:
    members: dict[int, list[int]] = {}
    for group, user in db.execute("SELECT group_jid_row_id, user_jid_row_id FROM group_participant_user ORDER BY _id"):
        members.setdefault(group, []).append(user)
    rows = db.execute("SELECT _id, jid_row_id, (SELECT raw_string FROM jid WHERE jid._id = jid_row_id) FROM chat"
                      " ORDER BY _id")
    return [_WhatsAppChat(chat_id, raw, tuple(members.get(jid_row, ()))) for chat_id, jid_row, raw in rows]


class _WhatsAppComposer:
    """Builds message, message_media and message_ftsv2 rows as WhatsApp stores them."""

    def __init__(self, rng: random.Random, texts: tuple[str, ...]):
        self._rng, self._texts = rng, texts

    def message(self, rowid: int, chat: _WhatsAppChat, timestamp: int) -> tuple[tuple, tuple | None, tuple | None]:
        """(message row, media row or None, FTS row or None)."""
        rng = self._rng
        from_me = rng.random() < 0.4
        sender = 0 if from_me or not chat.members else pick(rng, chat.members)
        kind = rng.random()
        media = None
        if kind < 0.07:
            msg_type, text = WHATSAPP_IMAGE, (pick(rng, self._texts) if rng.random() < 0.3 else None)
            media = self._media(rowid, chat, timestamp, "image/jpeg", text)
        elif kind < 0.10:
            msg_type, text = WHATSAPP_VOICE, None
            media = self._media(rowid, chat, timestamp, "audio/ogg; codecs=opus", None)
        elif kind < 0.105:
            msg_type, text = WHATSAPP_SYSTEM, None
        else:
            msg_type, text = WHATSAPP_TEXT, pick(rng, self._texts)
        key_id = random_hex(rng, 16).upper() if rng.random() < 0.8 else "3EB0" + random_hex(rng, 8).upper()
        status = pick(rng, _WHATSAPP_SENT_STATUSES) if from_me else 0
        received = timestamp + (0 if from_me else rng.randint(200, 5000))
        server_time = timestamp + rng.randint(100, 900) if from_me else -1
        message = (rowid, chat.rowid, int(from_me), key_id, sender, status, timestamp, received, server_time,
                   msg_type, text, int(rng.random() < 0.003))
        fts = (rowid, text, chat.jid, "message") if text else None
        return message, media, fts

    def _media(self, rowid, chat, timestamp, mime, caption) -> tuple:
        rng = self._rng
        folder = "WhatsApp Images" if mime.startswith("image") else "WhatsApp Voice Notes"
        prefix, suffix = ("IMG", "jpg") if mime.startswith("image") else ("PTT", "opus")
        name = f"Media/{folder}/{prefix}-{timestamp // 1000}-WA{rng.randint(0, 9999):04d}.{suffix}"
        width, height = (1600, 1200) if mime.startswith("image") else (0, 0)
        size = rng.randint(8_000, 600_000)
        return (rowid, chat.rowid, name, size, rng.randbytes(32), timestamp // 1000, width, height,
                height / width if width else None,
                f"/v/t62.7118-24/{rng.randint(10**7, 10**8)}_{random_hex(rng, 12)}.enc",
                mime, size, random_hex(rng, 32), 0 if width else rng.randint(1, 120), random_hex(rng, 32), caption)


def _whatsapp_stream(rng: random.Random, composer: _WhatsAppComposer, chats: list[_WhatsAppChat],
                     first_rowid: int, count: int, timestamp: int) -> Iterator[tuple]:
    """`count` messages after `timestamp` (ms), in random chats, a minute apart on average."""
    for rowid in range(first_rowid, first_rowid + count):
        timestamp += 1000 + int(rng.expovariate(1 / 60_000))
        yield composer.message(rowid, pick(rng, chats), timestamp)


def _whatsapp_write(db: apsw.Connection, composed: Iterable[tuple[tuple, tuple | None, tuple | None]]) -> None:
    """Insert messages with their media and FTS rows, as the app's code does (no triggers)."""
    for batch in batched(composed, BATCH_ROWS):
        db.executemany(_WHATSAPP_INSERT_MESSAGE, [message for message, _, _ in batch])
        db.executemany(_WHATSAPP_INSERT_MEDIA, [media for _, media, _ in batch if media])
        db.executemany("INSERT INTO message_ftsv2 (rowid, content, fts_jid, fts_namespace) VALUES (?,?,?,?)",
                       [fts for _, _, fts in batch if fts])
        _whatsapp_point_chats(db, [message for message, _, _ in batch])


@dataclasses.dataclass
class _ChatPointers:
    last: int = 0  # newest message _id
    timestamp: int = 0
    read: int | None = None  # our newest message _id, if we wrote
    unseen: int = 0  # received since then
    restart: bool = False  # whether `unseen` replaces the stored count instead of adding to it


def _whatsapp_point_chats(db: apsw.Connection, messages: list[tuple]) -> None:
    """Move each chat's pointers to its newest message and count unseen ones, as each arrival does.

    Folded per chat first, so a bulk load costs one UPDATE per chat rather than one per message.
    """
    chats: dict[int, _ChatPointers] = {}
    for message in messages:  # in the column order of _WHATSAPP_INSERT_MESSAGE
        rowid, chat_id, from_me, timestamp = message[0], message[1], message[2], message[6]
        pointers = chats.setdefault(chat_id, _ChatPointers())
        pointers.last, pointers.timestamp = rowid, timestamp
        if from_me:  # replying means the chat was read
            pointers.read, pointers.unseen, pointers.restart = rowid, 0, True
        else:
            pointers.unseen += 1
    db.executemany(
        "UPDATE chat SET last_message_row_id = ?2, display_message_row_id = ?2, sort_timestamp = ?3,"
        " last_read_message_row_id = coalesce(?4, last_read_message_row_id),"
        " unseen_message_count = ?5 + CASE WHEN ?6 THEN 0 ELSE coalesce(unseen_message_count, 0) END,"
        " unseen_row_count = ?5 + CASE WHEN ?6 THEN 0 ELSE coalesce(unseen_row_count, 0) END WHERE _id = ?1",
        [(chat_id, p.last, p.timestamp, p.read, p.unseen, p.restart) for chat_id, p in chats.items()])


def create_whatsapp(path, *, messages=200, chats=8, seed=0) -> None:
    """WhatsApp Android msgstore.db-like database, in WAL mode with an FTS5 message index."""
    rng = random.Random(seed)
    with new_database(path, user_version=_WHATSAPP_USER_VERSION) as db:
        with db:
            db.execute(_WHATSAPP_SCHEMA)
            chat_list = _whatsapp_contacts(db, rng, chats)
            texts = text_pool(rng, ENGLISH, [n.title() for n in FIRST_NAMES], 8192)
            composer = _WhatsAppComposer(rng, texts)
            if chat_list:
                _whatsapp_write(db, _whatsapp_stream(rng, composer, chat_list, 1, messages, _WHATSAPP_START_MS))
        # Switched after the bulk load, which would otherwise pass through the -wal twice; the
        # checkpoint folds anything left back into the file so that no -wal stays beside it.
        db.execute("PRAGMA journal_mode = WAL")
        db.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)


def whatsapp_new_messages(db: apsw.Connection, rng: random.Random, n: int) -> list[int]:
    """Send and receive `n` messages in random chats, with FTS rows and chat pointers. Returns _ids."""
    chats = _whatsapp_load_chats(db)
    if not chats:
        raise LookupError("no chat to write to")
    next_rowid, timestamp = db.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'message'), 0),"
        " coalesce((SELECT max(_id) FROM message), 0)) + 1, (SELECT max(timestamp) FROM message)").fetchone()
    composer = _WhatsAppComposer(rng, text_pool(rng, ENGLISH, [n.title() for n in FIRST_NAMES], 32 + n))
    composed = list(_whatsapp_stream(rng, composer, chats, next_rowid, n, timestamp or _WHATSAPP_START_MS))
    with db:
        _whatsapp_write(db, composed)
    return list(range(next_rowid, next_rowid + n))


def whatsapp_delete_for_everyone(db: apsw.Connection, rng: random.Random, msg_id: int | None = None) -> int:
    """Revoke a text message: type 15, text gone, a message_revoked row, out of the FTS index. Returns its _id."""
    with db:
        if msg_id is None:
            msg_id = recent_key(db, rng, "message", "_id", f"message_type = {WHATSAPP_TEXT}")
        key_id, timestamp = db.execute("SELECT key_id, timestamp FROM message WHERE _id = ?", (msg_id,)).fetchone()
        db.execute("UPDATE message SET message_type = ?, text_data = NULL WHERE _id = ?", (WHATSAPP_REVOKED, msg_id))
        db.execute("INSERT OR REPLACE INTO message_revoked (message_row_id, revoked_key_id, revoke_timestamp)"
                   " VALUES (?,?,?)", (msg_id, key_id, timestamp + rng.randint(2_000, 3_600_000)))
        db.execute("DELETE FROM message_ftsv2 WHERE rowid = ?", (msg_id,))
    return msg_id

