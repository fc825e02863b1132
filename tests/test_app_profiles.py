"""App profiles read the real fixtures and the sample apps' databases field by field."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import apsw
import pytest

from syncd.app import APPLE_EPOCH_MS, IMAGE, LOCATION, RECALLED, SYSTEM, TEXT, AppProfile, Message
from syncd.plugins import app_profiles, plugin_manager, profile_for
from syncd.reading.model import open_database
from syncd.samples import create_imessage, create_wechat, create_whatsapp, wechat_recall, whatsapp_delete_for_everyone
from syncd_app_imessage.profile import read_attributed_text

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
WHATSAPP_IOS = FIXTURES / "whatsapp-ios-ChatStorage.sqlite"
IMESSAGE = FIXTURES / "imessage-macos-chat.db"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")


@pytest.fixture(scope="module")
def pm():
    return plugin_manager()


def opened(pm, path):
    db = open_database(path)
    cls = profile_for(pm, db)
    assert cls is not None, f"no profile recognises {path.name}"
    return cls(db), cls


def test_every_builtin_profile_is_registered_and_keeps_the_protocol(pm):
    classes = app_profiles(pm)
    assert {cls.app for cls in classes} == {"wechat", "whatsapp", "imessage", "signal"}
    for cls in classes:
        assert cls.summary and callable(cls.recognises)
        for method in ("conversations", "participants", "messages", "message_tables", "message_from_row"):
            assert callable(getattr(cls, method)), (cls, method)


@needs_fixtures
def test_whatsapp_ios_fixture_field_by_field(pm, tmp_path):
    profile, cls = opened(pm, WHATSAPP_IOS)
    assert cls.app == "whatsapp" and isinstance(profile, AppProfile)
    chats = {c.id: c for c in profile.conversations()}
    assert len(chats) == 5
    assert chats["19198887386@s.whatsapp.net"].name == "This Is DFIR Two"
    assert not chats["19198887386@s.whatsapp.net"].is_group
    assert chats["120363023356659014@g.us"].name == "Our Test Group" and chats["120363023356659014@g.us"].is_group
    names = {p.id: p.name for p in profile.participants()}
    assert names["19198887386@s.whatsapp.net"] == "This Is DFIR Two"
    messages = {m.id: m for m in profile.messages()}
    assert len(messages) == 32 and 28 not in messages  # the fixture's deleted row
    mine = messages[12]
    assert (mine.conversation, mine.from_me, mine.kind, mine.text, mine.server_id) == (
        "19198887386@s.whatsapp.net", True, TEXT, "I’m here!", "3AD2D4F6C4FC636222C7")
    assert mine.time == 978_307_200_000 + 704_735_807_221  # ZMESSAGEDATE 704735807.221498 s after 2001
    theirs = messages[13]
    assert theirs.sender == "19198887386@s.whatsapp.net" and not theirs.from_me and theirs.time == 1_683_043_050_000
    assert messages[16].reply_to == messages[15].server_id == "3A26649A0A496377CB01"
    assert messages[21].kind == IMAGE and messages[21].media == (
        "Media/19198887386@s.whatsapp.net/d/0/d041d159-fd7d-4abb-9192-0e97c10ddb00.jpg",)
    assert messages[30].kind == LOCATION and messages[1].kind == SYSTEM and messages[1].sender is None
    # One conversation comes in time order, and the range is [since, until).
    chat = list(profile.messages("19198887386@s.whatsapp.net"))
    assert [m.time for m in chat] == sorted(m.time for m in chat) and len(chat) == 22
    window = list(profile.messages(since=theirs.time, until=messages[15].time))
    assert [m.id for m in window] == [13, 14]
    # The row a changeset carries maps to the same message.
    db = profile.db
    columns = [r[1] for r in db.execute("PRAGMA table_info(ZWAMESSAGE)")]
    row = dict(zip(columns, db.execute("SELECT * FROM ZWAMESSAGE WHERE Z_PK = 16").fetchone()))
    assert profile.message_tables()[0].table == "ZWAMESSAGE"
    assert profile.message_from_row("ZWAMESSAGE", row) == messages[16]


@needs_fixtures
def test_imessage_fixture_field_by_field(pm):
    profile, cls = opened(pm, IMESSAGE)
    assert cls.app == "imessage"
    chats = {c.id: c for c in profile.conversations()}
    assert chats["iMessage;+;chat123456789"].name == "Weekend Plans" and chats["iMessage;+;chat123456789"].is_group
    assert not chats["iMessage;-;alice@example.com"].is_group
    messages = {m.id: m for m in profile.messages()}
    assert len(messages) == 15
    first = messages[1]
    assert (first.sender, first.from_me, first.text, first.server_id, first.conversation) == (
        "+15551234567", False, "Hey, how are you?", "msg-guid-1", "iMessage;-;+15551234567")
    assert first.time == 978_307_200_000 + 771_069_600_000  # date 771069600000000000 ns after 2001
    # `text` is empty: the text comes from attributedBody's typedstream.
    assert messages[6].text == "Check out this cool project!" and messages[6].sender == "alice@example.com"
    assert messages[9].kind == IMAGE and messages[9].media == ("~/Library/Messages/Attachments/screenshot.png",)
    assert messages[13].reply_to == "msg-guid-10" and messages[2].sender == "me" and messages[2].from_me
    assert messages[12].sender == "+15559876543"
    row_columns = [r[1] for r in profile.db.execute("PRAGMA table_info(message)")]
    row = dict(zip(row_columns, profile.db.execute("SELECT * FROM message WHERE ROWID = 6").fetchone()))
    assert profile.message_from_row("message", row) == messages[6]


def test_attributed_body_reader_is_bounded():
    # As Messages writes it (the sample generator's layout), long strings included.
    from syncd.samples.imessage import _typedstream

    for text in ("hi", "x" * 200, "长" * 30_000):
        assert read_attributed_text(_typedstream(text)) == text
    body = _typedstream("hello")
    for hostile in (body[:40], body.replace(b"\x05hello", b"\x82\xff\xff\xff\x7fhello"), b"NSString", b"", None, 7,
                    b"\x00" * (2 << 20)):
        assert read_attributed_text(hostile) is None


def test_wechat_android_sample_field_by_field(pm, tmp_path):
    path = tmp_path / "EnMicroMsg.db"
    create_wechat(path, messages=400, chats=10, seed=3)
    raw = apsw.Connection(str(path))
    recalled = wechat_recall(raw, random.Random(1))
    rows = raw.execute("SELECT msgId, msgSvrId, type, isSend, createTime, talker, content FROM message").fetchall()
    contacts = dict(raw.execute("SELECT username, coalesce(nullif(conRemark, ''), nickname) FROM rcontact"))
    me = raw.execute("SELECT value FROM userinfo WHERE id = 2").fetchone()[0]
    raw.close()
    profile, cls = opened(pm, path)
    assert cls.app == "wechat"
    messages = {m.id: m for m in profile.messages()}
    assert len(messages) == len(rows)
    checked = {"group": 0, "text": 0}
    for msg_id, server_id, msg_type, is_send, create_time, talker, content in rows:
        m = messages[msg_id]
        assert (m.conversation, m.time, m.from_me) == (talker, create_time, bool(is_send))
        assert m.server_id == (str(server_id) if server_id else None)
        if msg_type == 1 and talker.endswith("@chatroom") and not is_send:
            sender, text = content.split(":\n", 1)
            assert (m.sender, m.text, m.kind) == (sender, text, TEXT)
            checked["group"] += 1
        elif msg_type == 1:
            assert (m.sender, m.text, m.kind) == (me if is_send else talker, content, TEXT)
            checked["text"] += 1
    assert checked["group"] > 5 and checked["text"] > 50
    assert messages[recalled].kind == RECALLED and "撤回了一条消息" in messages[recalled].text
    names = {p.id: p.name for p in profile.participants()}
    assert all(names[u] == n for u, n in contacts.items())
    chats = {c.id: c for c in profile.conversations()}
    assert all(c.is_group == c.id.endswith("@chatroom") for c in chats.values())
    assert {c.name for c in chats.values()} >= {"相亲相爱一家人", "公司项目群"}
    # Links show their title, not their XML.
    links = [m for m in messages.values() if m.kind == "link"]
    assert links and all(m.text and "<" not in m.text for m in links)


def test_whatsapp_android_sample_and_revoke(pm, tmp_path):
    path = tmp_path / "msgstore.db"
    create_whatsapp(path, messages=300, chats=8, seed=2)
    raw = apsw.Connection(str(path))
    revoked = whatsapp_delete_for_everyone(raw, random.Random(4))
    rows = raw.execute("SELECT m._id, m.key_id, m.from_me, m.timestamp, m.text_data, m.message_type, j.raw_string,"
                       " (SELECT raw_string FROM jid WHERE _id = m.sender_jid_row_id),"
                       " (SELECT file_path FROM message_media WHERE message_row_id = m._id)"
                       " FROM message m JOIN chat c ON c._id = m.chat_row_id JOIN jid j ON j._id = c.jid_row_id").fetchall()
    raw.close()
    profile, cls = opened(pm, path)
    assert cls.__name__ == "WhatsAppAndroid"
    messages = {m.id: m for m in profile.messages()}
    assert len(messages) == 300
    for pk, key_id, from_me, timestamp, text, msg_type, chat, sender, media in rows:
        m = messages[pk]
        assert (m.server_id, m.from_me, m.time, m.conversation) == (key_id, bool(from_me), timestamp, chat)
        if msg_type == 0:
            assert m.text == text and m.kind == TEXT
        if media:
            assert m.media == (media,)
        if not from_me and chat.endswith("@g.us"):
            assert m.sender == sender
    assert messages[revoked].kind == RECALLED and messages[revoked].text is None


def test_whatsapp_android_legacy_messages_table(pm, tmp_path):
    path = tmp_path / "msgstore.db"
    db = apsw.Connection(str(path))
    db.execute("CREATE TABLE messages (_id INTEGER PRIMARY KEY AUTOINCREMENT, key_remote_jid TEXT NOT NULL,"
               " key_from_me INTEGER, key_id TEXT NOT NULL, status INTEGER, data TEXT, timestamp INTEGER,"
               " media_wa_type TEXT, remote_resource TEXT);"
               "CREATE TABLE chat_list (_id INTEGER PRIMARY KEY AUTOINCREMENT, key_remote_jid TEXT UNIQUE, subject TEXT);"
               "INSERT INTO messages VALUES (1, '-1', 0, '-1', -1, NULL, 0, 0, NULL);"
               "INSERT INTO messages VALUES (2, '123@g.us', 0, 'A1', 0, 'hi all', 1500000000000, 0, '44777@s.whatsapp.net');"
               "INSERT INTO messages VALUES (3, '123@g.us', 1, 'A2', 13, 'hello', 1500000001000, 0, NULL);"
               "INSERT INTO chat_list (key_remote_jid, subject) VALUES ('123@g.us', 'Old friends')")
    db.close()
    profile, _ = opened(pm, path)
    assert [(c.id, c.name, c.is_group) for c in profile.conversations()] == [("123@g.us", "Old friends", True)]
    first, second = profile.messages()
    assert (first.id, first.sender, first.text, first.time, first.server_id) == (
        2, "44777@s.whatsapp.net", "hi all", 1_500_000_000_000, "A1")
    assert second.from_me and second.sender == "me" and second.text == "hello"


def test_wechat_ios_shard_reads_alone(pm, tmp_path):
    friend = "wxid_friend1"
    md5 = hashlib.md5(friend.encode()).hexdigest()
    group_md5 = hashlib.md5(b"5566@chatroom").hexdigest()
    path = tmp_path / "message_1.sqlite"
    db = apsw.Connection(str(path))
    for chat in (md5, group_md5):
        db.execute(f"CREATE TABLE Chat_{chat} (TableVer INTEGER DEFAULT 1, MesLocalID INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " MesSvrID INTEGER DEFAULT 0, CreateTime INTEGER DEFAULT 0, Message TEXT, Status INTEGER DEFAULT 0,"
                   " ImgStatus INTEGER DEFAULT 0, Type INTEGER, Des INTEGER)")
    db.execute(f"INSERT INTO Chat_{md5} (MesSvrID, CreateTime, Message, Type, Des) VALUES"
               " (111, 1600000000, '你好', 1, 1), (112, 1600000060, '在吗', 1, 0)")
    db.execute(f"INSERT INTO Chat_{group_md5} (MesSvrID, CreateTime, Message, Type, Des) VALUES"
               " (221, 1600000100, 'wxid_a:\n大家好', 1, 1), (222, 1600000200, 'wxid_b:\n好', 1, 1)")
    db.close()
    profile, cls = opened(pm, path)
    assert cls.__name__ == "WeChatIOS"
    chats = {c.id: c for c in profile.conversations()}
    assert chats[md5].name == md5 and not chats[md5].is_group and chats[group_md5].is_group
    received, sent = profile.messages(md5)
    assert (received.id, received.sender, received.text, received.time, received.server_id) == (
        f"{md5}:1", md5, "你好", 1_600_000_000_000, "111")
    assert sent.from_me and sent.text == "在吗"
    first, _ = profile.messages(group_md5)
    assert (first.sender, first.text) == ("wxid_a", "大家好")
    assert {t.table for t in profile.message_tables()} == {f"Chat_{md5}", f"Chat_{group_md5}"}


def signal_db(path: Path) -> None:
    db = apsw.Connection(str(path))
    db.execute("""CREATE TABLE conversations (id STRING PRIMARY KEY ASC, json TEXT, active_at INTEGER, type STRING,
        members TEXT, name TEXT, profileName TEXT, profileFamilyName TEXT, profileFullName TEXT, e164 TEXT,
        serviceId TEXT, groupId TEXT);
      CREATE TABLE messages (rowid INTEGER PRIMARY KEY ASC, id STRING UNIQUE, json TEXT, readStatus INTEGER,
        expires_at INTEGER, sent_at INTEGER, schemaVersion INTEGER, conversationId STRING, received_at INTEGER,
        source STRING, hasAttachments INTEGER, type STRING, body TEXT, isErased INTEGER, sourceServiceId TEXT);""")
    db.execute("INSERT INTO conversations (id, json, type, name, profileFullName, e164, serviceId) VALUES"
               " ('c1', '{}', 'private', NULL, 'Ann Lee', '+4411', 'aci-ann'),"
               " ('c2', '{\"name\": \"Climbers\"}', 'group', NULL, NULL, NULL, NULL)")
    rows = [
        ("m1", {"quote": None}, 1_700_000_000_000, "c1", "incoming", "hi <b>you</b>", 0, "aci-ann"),
        ("m2", {"quote": {"id": 1_700_000_000_000}}, 1_700_000_005_000, "c1", "outgoing", "hey", 0, None),
        ("m3", {"attachments": [{"contentType": "image/jpeg", "path": "ab/cdef"}]}, 1_700_000_009_000, "c2",
         "incoming", None, 0, "aci-ann"),
        ("m4", {"deletedForEveryone": True}, 1_700_000_010_000, "c2", "incoming", None, 1, "aci-ann"),
        ("m5", "not json {", 1_700_000_011_000, "c2", "group-v2-change", None, 0, None),
    ]
    db.executemany("INSERT INTO messages (id, json, sent_at, conversationId, type, body, isErased, sourceServiceId)"
                   " VALUES (?,?,?,?,?,?,?,?)",
                   [(i, j if isinstance(j, str) else json.dumps(j), t, c, ty, b, e, s) for i, j, t, c, ty, b, e, s in rows])
    db.close()


def test_signal_desktop(pm, tmp_path):
    path = tmp_path / "db.sqlite"
    signal_db(path)
    profile, cls = opened(pm, path)
    assert cls.app == "signal"
    chats = {c.id: c for c in profile.conversations()}
    assert (chats["c1"].name, chats["c1"].is_group, chats["c2"].name, chats["c2"].is_group) == (
        "Ann Lee", False, "Climbers", True)
    assert {p.id: p.name for p in profile.participants()}["aci-ann"] == "Ann Lee"
    m = {x.id: x for x in profile.messages()}
    assert (m["m1"].sender, m["m1"].text, m["m1"].time, m["m1"].kind) == ("aci-ann", "hi <b>you</b>", 1_700_000_000_000, TEXT)
    assert m["m2"].from_me and m["m2"].reply_to == "1700000000000" == m["m1"].server_id
    assert m["m3"].kind == IMAGE and m["m3"].media == ("ab/cdef",)
    assert m["m4"].kind == RECALLED and m["m5"].kind == SYSTEM  # malformed json reads as null
    columns = [r[1] for r in profile.db.execute("PRAGMA table_info(messages)")]
    for pk in ("m2", "m3", "m4"):
        row = dict(zip(columns, profile.db.execute("SELECT * FROM messages WHERE id = ?", (pk,)).fetchone()))
        assert profile.message_from_row("messages", row) == m[pk]
    assert profile.message_tables()[0].key == ("rowid",)


def test_a_profile_tolerates_dropped_and_added_columns(pm, tmp_path):
    """An app update that adds a column and drops an optional one still reads."""
    path = tmp_path / "EnMicroMsg.db"
    create_wechat(path, messages=50, chats=4, seed=5)
    db = apsw.Connection(str(path))
    db.execute("DROP INDEX messageSvrIdIndex; ALTER TABLE message ADD COLUMN newFeature TEXT;"
               " ALTER TABLE message DROP COLUMN imgPath;"
               " ALTER TABLE message DROP COLUMN msgSvrId")
    db.close()
    profile, _ = opened(pm, path)
    messages = list(profile.messages())
    assert len(messages) == 50 and all(m.server_id is None and m.media == () for m in messages)


def test_no_profile_for_an_unknown_database(pm, tmp_path):
    path = tmp_path / "notes.db"
    db = apsw.Connection(str(path))
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'x')")
    db.close()
    assert profile_for(pm, open_database(path)) is None


@needs_fixtures
def test_profiles_never_write_beside_the_database(pm, tmp_path):
    copy = tmp_path / "ChatStorage.sqlite"
    shutil.copyfile(WHATSAPP_IOS, copy)
    before = sorted(p.name for p in tmp_path.iterdir())
    profile, _ = opened(pm, copy)
    list(profile.messages())
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@needs_fixtures
@pytest.mark.parametrize("name, sql", [
    ("chat.db", "UPDATE message SET date = ?"),
    ("ChatStorage.sqlite", "UPDATE ZWAMESSAGE SET ZMESSAGEDATE = ?"),
    ("message_1.sqlite", "UPDATE Chat_0123456789abcdef0123456789abcdef SET CreateTime = ?"),
])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), "soon", b"\x00"])
def test_a_time_that_is_not_a_finite_number_reads_as_0(pm, tmp_path, name, sql, value):
    """SQLite keeps ±Inf in a REAL column: a hostile database's times must not stop an export."""
    path = tmp_path / name
    if name == "chat.db":
        shutil.copyfile(IMESSAGE, path)
    elif name == "ChatStorage.sqlite":
        shutil.copyfile(WHATSAPP_IOS, path)
    else:
        db = apsw.Connection(str(path))
        db.execute("CREATE TABLE Chat_0123456789abcdef0123456789abcdef (MesLocalID INTEGER PRIMARY KEY,"
                   " CreateTime INTEGER, Message TEXT, Type INTEGER, Des INTEGER);"
                   " INSERT INTO Chat_0123456789abcdef0123456789abcdef VALUES (1, 1600000000, 'hi', 1, 1)")
        db.close()
    db = apsw.Connection(str(path))
    db.execute(sql, (value,))
    db.close()
    profile, _ = opened(pm, path)
    messages = list(profile.messages())
    assert messages and {m.time for m in messages} <= {0, APPLE_EPOCH_MS}
