"""Everything an app does to its database comes through: each version restores exactly."""

from __future__ import annotations

import pytest

SCHEMA = """
PRAGMA user_version = 12;
CREATE TABLE rcontact(username TEXT PRIMARY KEY, nickname TEXT, type INT);
CREATE TABLE message(msgId INTEGER PRIMARY KEY, talker TEXT, content TEXT, type INT, createTime INTEGER,
                     talkerId INTEGER, lvbuffer BLOB);
CREATE INDEX messageTalkerIndex ON message(talker);
CREATE TABLE receipts(msgId, reader, at REAL);
CREATE TABLE settings(section TEXT, key TEXT COLLATE NOCASE, value, PRIMARY KEY(section, key)) WITHOUT ROWID;
CREATE TABLE handle(ROWID INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE);
CREATE VIEW recent AS SELECT * FROM message ORDER BY createTime DESC LIMIT 10;
CREATE TRIGGER bump AFTER INSERT ON message BEGIN UPDATE rcontact SET type = type WHERE username = new.talker; END;
INSERT INTO rcontact VALUES ('wxid_alice', '爱丽丝', 3), ('wxid_bob', 'Bob', 3), ('123@chatroom', '家庭群', 2);
INSERT INTO message VALUES (1, 'wxid_alice', '早上好', 1, 1700000000000, 1, NULL),
                           (2, 'wxid_bob', 'lunch?', 1, 1700000001000, 2, x'0a0b'),
                           (3, '123@chatroom', 'wxid_bob:\n晚饭吃什么', 1, 1700000002000, 3, NULL);
INSERT INTO receipts VALUES (1, 'wxid_alice', 1.5), (2, 'wxid_bob', 2);
INSERT INTO settings VALUES ('ui', 'Theme', 'dark'), ('ui', 'font', 14);
INSERT INTO handle(id) VALUES ('+8613800000000'), ('alice@example.com');
"""


@pytest.fixture
def phone(harness):
    harness.execute(SCHEMA)
    harness.sync()
    return harness


def step(phone, sql: str, *params) -> int:
    phone.execute(sql, *params)
    report = phone.sync()
    assert report.version is not None, f"no version after: {sql}"
    return report.version.number


CHANGES = {
    "insert": "INSERT INTO message VALUES (4, 'wxid_alice', '新消息 🎉', 1, 1700000003000, 1, NULL)",
    "recall": "UPDATE message SET type = 10000, content = '\"爱丽丝\" 撤回了一条消息' WHERE msgId = 1",
    "delete": "DELETE FROM message WHERE msgId = 2",
    "rowid reuse": "DELETE FROM message WHERE msgId = 3; INSERT INTO message VALUES (3, 'wxid_bob', 'reused', 1, 1, 2, NULL)",
    "whole-chat delete": "DELETE FROM message WHERE talker = '123@chatroom'; DELETE FROM rcontact WHERE username = '123@chatroom'",
    "storage class only": "UPDATE receipts SET msgId = 2.0 WHERE msgId = 2",
    "text to blob": "UPDATE message SET content = CAST(content AS BLOB) WHERE msgId = 1",
    "add column": "ALTER TABLE message ADD COLUMN flag INT DEFAULT 0",
    "new table": "CREATE TABLE stickers(id INTEGER PRIMARY KEY, data BLOB); INSERT INTO stickers VALUES (1, randomblob(64))",
    "drop table": "DROP TABLE receipts",
    "index": "CREATE INDEX messageCreateTimeIndex ON message(createTime)",
    "drop index": "DROP INDEX messageTalkerIndex",
    "view": "DROP VIEW recent; CREATE VIEW recent AS SELECT msgId FROM message",
    "trigger": "DROP TRIGGER bump",
    "user_version": "PRAGMA user_version = 13",
    "application_id": "PRAGMA application_id = 1234",
    "without rowid": "UPDATE settings SET value = 'light' WHERE key = 'THEME'; INSERT INTO settings VALUES ('net', 'proxy', NULL)",
    "no primary key + VACUUM": "DELETE FROM receipts WHERE msgId = 1; INSERT INTO receipts VALUES (9, 'x', 0.5); VACUUM",
    "overflow blob": "INSERT INTO message VALUES (10, 'wxid_bob', 'photo', 3, 5, 2, randomblob(300000))",
    "autoincrement": "DELETE FROM handle; INSERT INTO handle(id) VALUES ('carol@example.com')",
    "rename column": "ALTER TABLE rcontact RENAME COLUMN nickname TO nick",
    "drop column": "ALTER TABLE message DROP COLUMN lvbuffer",
    "analyze": "ANALYZE",
}


@pytest.mark.parametrize("change", CHANGES)
def test_each_kind_of_change_round_trips(phone, change):
    step(phone, CHANGES[change])
    phone.check_all_versions()


def test_page_size_and_journal_mode_changes(phone):
    step(phone, "PRAGMA page_size = 8192; VACUUM")
    step(phone, "PRAGMA journal_mode = WAL")
    step(phone, "INSERT INTO message VALUES (20, 'wxid_alice', 'in wal', 1, 9, 1, NULL)")
    step(phone, "PRAGMA journal_mode = DELETE")
    phone.check_all_versions()


def test_auto_vacuum_change(phone):
    step(phone, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM")
    phone.check_all_versions()


def test_fts5_with_shadow_tables(phone):
    step(phone, "CREATE VIRTUAL TABLE message_fts USING fts5(content, tokenize = 'unicode61');"
                "INSERT INTO message_fts(rowid, content) SELECT msgId, content FROM message")
    step(phone, "INSERT INTO message_fts(rowid, content) VALUES (99, 'searchable words 你好')")
    step(phone, "DELETE FROM message_fts WHERE rowid = 1")
    phone.check_all_versions()
    restored = phone.restore()
    import apsw

    db = apsw.Connection(str(restored))
    assert db.execute("SELECT rowid FROM message_fts WHERE message_fts MATCH 'searchable'").fetchall() == [(99,)]


def test_wal_content_is_included(harness):
    """Committed rows still in the -wal beside the database are part of the version."""
    db = harness.connect()
    db.execute("PRAGMA journal_mode = WAL").fetchall()
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'only in the wal')")
    assert (harness.phone / "chat.db-wal").stat().st_size > 0
    report = harness.sync()  # the app still has the database open
    db.close()
    assert report.version.rows["added"] == 1
    harness.check_all_versions()


def test_no_change_creates_no_version_and_writes_nothing(phone):
    before = {p: p.stat().st_mtime_ns for p in phone.target.rglob("*")}
    report = phone.sync()
    assert report.version is None and report.head == 1
    assert {p: p.stat().st_mtime_ns for p in phone.target.rglob("*")} == before


def test_deleted_and_recalled_messages_stay_in_history(phone):
    step(phone, CHANGES["recall"])
    step(phone, CHANGES["whole-chat delete"])
    import apsw

    first = apsw.Connection(str(phone.restore(1)))
    assert first.execute("SELECT content FROM message WHERE msgId = 1").fetchall() == [("早上好",)]
    assert first.execute("SELECT count(*) FROM message WHERE talker = '123@chatroom'").fetchall() == [(1,)]
    latest = apsw.Connection(str(phone.restore()))
    assert latest.execute("SELECT count(*) FROM message WHERE talker = '123@chatroom'").fetchall() == [(0,)]
