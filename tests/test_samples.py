"""The sample chat databases, the app-like changes, and the fidelity check they are judged by."""

from __future__ import annotations

import os
import plistlib
import random
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

import apsw
import pytest
from logical import assert_same_database, logical_state

from syncd import samples


def connect(path) -> apsw.Connection:
    return apsw.Connection(os.fspath(path))


def query(path, sql, *params) -> list[tuple]:
    db = connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def scalar(path, sql, *params):
    return query(path, sql, *params)[0][0]


def tables(path) -> set[str]:
    return {name for (name,) in query(path, "SELECT name FROM sqlite_schema WHERE type = 'table'")}


class Applied(NamedTuple):
    """A change applied to a fresh sample: what it returned and the database before and after."""

    path: Path
    result: Any
    before: dict
    after: dict

    def changed(self, table: str) -> dict:
        """key -> (values before or None, values after or None) of the rows of `table` that differ."""
        old = dict(self.before["tables"][table]["rows"])
        new = dict(self.after["tables"][table]["rows"])
        return {key: (old.get(key), new.get(key)) for key in old.keys() | new.keys() if old.get(key) != new.get(key)}

    def value(self, table: str, name: str, values: tuple):
        """The plain value of column `name` in a row's typed values."""
        return values[self.after["tables"][table]["columns"].index(name)][1]


@pytest.fixture
def apply(tmp_path):
    """Run one change against a fresh 400-message sample."""
    def run(app: str, change, *, messages: int = 400, seed: int = 3) -> Applied:
        path = tmp_path / f"{app}.db"
        samples.SAMPLE_APPS[app].create(path, messages=messages, seed=seed)
        before = logical_state(path)
        db = connect(path)
        try:
            result = change(db, random.Random(seed))
        finally:
            db.close()
        return Applied(path, result, before, logical_state(path))
    return run


# -- generators ---------------------------------------------------------------------------------

@pytest.mark.parametrize("app", sorted(samples.SAMPLE_APPS))
def test_generator_writes_a_sound_database_and_nothing_else(tmp_path, app):
    path = tmp_path / "chat.db"
    samples.SAMPLE_APPS[app].create(path, messages=300)
    assert scalar(path, "PRAGMA integrity_check") == "ok"
    assert sorted(os.listdir(tmp_path)) == ["chat.db"]  # WAL checkpointed, no journal left
    assert scalar(path, "PRAGMA user_version") != 0


@pytest.mark.parametrize("app", sorted(samples.SAMPLE_APPS))
def test_generator_refuses_to_overwrite(tmp_path, app):
    path = tmp_path / "chat.db"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        samples.SAMPLE_APPS[app].create(path)
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize("app", sorted(samples.SAMPLE_APPS))
def test_generator_is_deterministic(tmp_path, app):
    create = samples.SAMPLE_APPS[app].create
    for name, seed in (("a.db", 5), ("b.db", 5), ("c.db", 6)):
        create(tmp_path / name, messages=100, seed=seed)
    assert logical_state(tmp_path / "a.db") == logical_state(tmp_path / "b.db")
    assert logical_state(tmp_path / "a.db") != logical_state(tmp_path / "c.db")


def test_wechat_sample_looks_like_enmicromsg(tmp_path):
    path = tmp_path / "EnMicroMsg.db"
    samples.create_wechat(path, messages=3000, chats=12)
    assert {"message", "rcontact", "rconversation", "userinfo", "chatroom"} <= tables(path)
    indexes = {name for (name,) in query(path, "SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert {"messageSvrIdIndex", "messageTalkerIndex", "messageTalkerCreateTimeIndex",
            "messageCreateTimeIndex"} <= indexes
    assert "AUTOINCREMENT" not in scalar(path, "SELECT sql FROM sqlite_schema WHERE name = 'message'")

    kinds = dict(query(path, "SELECT type, count(*) FROM message GROUP BY type"))
    assert set(kinds) >= {1, 3, 34, 47, 49, 10000}
    assert 0.03 < kinds[3] / 3000 < 0.08  # about one image in twenty
    assert scalar(path, "SELECT count(*) FROM message WHERE type = 3 AND (imgPath IS NULL OR lvbuffer IS NULL)") == 0
    assert scalar(path, "SELECT max(length(CAST(content AS BLOB))) FROM message") > 4096  # overflow pages
    assert scalar(path, "SELECT min(createTime) FROM message") > 10**12  # milliseconds
    assert scalar(path, "SELECT count(*) FROM message WHERE content GLOB '*[一-龥]*'") > 1500

    groups = query(path, "SELECT chatroomname FROM chatroom")
    assert groups and all(name.endswith("@chatroom") for (name,) in groups)
    assert scalar(path, "SELECT count(*) FROM message WHERE talker LIKE '%@chatroom' AND isSend = 0"
                        " AND type = 1 AND content LIKE '%:' || char(10) || '%'") > 0
    # talkerId is the rowid of the contact row, which is why rcontact rowids matter.
    assert scalar(path, "SELECT count(*) FROM message m JOIN rcontact c ON c.rowid = m.talkerId"
                        " WHERE c.username = m.talker") == 3000
    assert scalar(path, "SELECT count(DISTINCT talker) FROM message") == scalar(
        path, "SELECT count(*) FROM rconversation")
    assert query(path, "SELECT r.conversationTime = max(m.createTime) FROM rconversation r"
                       " JOIN message m ON m.talker = r.username GROUP BY r.username") == [(1,)] * 12


def test_imessage_sample_looks_like_chat_db(tmp_path):
    path = tmp_path / "chat.db"
    samples.create_imessage(path, messages=1000)
    assert {"message", "handle", "chat", "chat_message_join", "chat_handle_join", "attachment",
            "message_attachment_join", "deleted_messages", "sqlite_sequence"} <= tables(path)
    assert scalar(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'") >= 2
    assert scalar(path, "SELECT count(*) FROM message"
                        " WHERE ROWID NOT IN (SELECT message_id FROM chat_message_join)") == 0
    assert scalar(path, "SELECT count(*) FROM message WHERE attributedBody IS NULL OR guid IS NULL") == 0
    assert scalar(path, "SELECT count(*) FROM message_attachment_join") > 0
    assert scalar(path, "SELECT count(*) FROM message WHERE associated_message_type BETWEEN 2000 AND 2005") > 0
    seconds_since_2001 = scalar(path, "SELECT min(date) FROM message") // 10**9
    assert 20 * 365 * 86400 < seconds_since_2001 < 30 * 365 * 86400  # nanoseconds since 2001: 2021..2031


def test_whatsapp_sample_looks_like_msgstore(tmp_path):
    path = tmp_path / "msgstore.db"
    samples.create_whatsapp(path, messages=1000)
    assert {"message", "chat", "jid", "message_media", "props", "message_ftsv2_content"} <= tables(path)
    assert scalar(path, "PRAGMA journal_mode") == "wal"
    assert scalar(path, "SELECT count(*) FROM message WHERE text_data IS NOT NULL") == scalar(
        path, "SELECT count(*) FROM message_ftsv2")
    msg_id, text = query(path, "SELECT _id, text_data FROM message WHERE message_type = 0 ORDER BY _id LIMIT 1")[0]
    phrase = '"' + text.replace('"', '""') + '"'
    assert (msg_id,) in query(path, "SELECT rowid FROM message_ftsv2 WHERE message_ftsv2 MATCH ?", phrase)
    assert query(path, "SELECT count(*) FROM chat WHERE last_message_row_id !="
                       " (SELECT max(_id) FROM message WHERE chat_row_id = chat._id)") == [(0,)]


def test_wechat_generation_throughput(tmp_path, capsys):
    """Not a limit, a record: benchmarks generate a million messages."""
    path = tmp_path / "big.db"
    started = time.perf_counter()
    samples.create_wechat(path, messages=200_000)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\ncreate_wechat(messages=200_000): {elapsed:.2f} s, {200_000 / elapsed:,.0f} messages/s,"
              f" {path.stat().st_size / 1e6:.1f} MB")


# -- WeChat changes ------------------------------------------------------------------------------

def test_wechat_new_messages_update_the_chat_list(apply):
    run = apply("wechat", lambda db, rng: samples.wechat_new_messages(db, rng, 15))
    assert run.result == list(range(401, 416))
    assert sorted(run.changed("message")) == run.result
    for talker, newest in query(run.path, "SELECT talker, max(createTime) FROM message WHERE msgId > 400"
                                          " GROUP BY talker"):
        assert scalar(run.path, "SELECT conversationTime FROM rconversation WHERE username = ?", talker) == newest
    # New messages go out as "sending" or arrive unread; system notices are read.
    assert scalar(run.path, "SELECT count(*) FROM message WHERE msgId > 400 AND status NOT IN (1, 3, 4)") == 0


def test_wechat_recall_rewrites_the_row_in_place(apply):
    run = apply("wechat", samples.wechat_recall)
    assert list(run.changed("message")) == [run.result]
    old, new = run.changed("message")[run.result]
    assert run.value("message", "type", new) == 10000
    assert run.value("message", "content", new).endswith("撤回了一条消息")
    assert run.value("message", "msgSvrId", new) == run.value("message", "msgSvrId", old)


def test_wechat_delete_chat_removes_messages_and_conversation(apply):
    run = apply("wechat", samples.wechat_delete_chat)
    assert scalar(run.path, "SELECT count(*) FROM message WHERE talker = ?", run.result) == 0
    assert scalar(run.path, "SELECT count(*) FROM rconversation WHERE username = ?", run.result) == 0
    gone = run.changed("message")
    assert gone and all(new is None for _, new in gone.values())


def test_wechat_delete_newest_lets_the_next_message_reuse_ids(apply):
    run = apply("wechat", lambda db, rng: (samples.wechat_delete_newest(db, rng, 5),
                                           samples.wechat_new_messages(db, rng, 2)))
    deleted, written = run.result
    assert deleted == [396, 397, 398, 399, 400]
    assert written == [396, 397]  # no AUTOINCREMENT: ids come back
    assert scalar(run.path, "SELECT max(msgId) FROM message") == 397


def test_wechat_status_churn_changes_only_statuses(apply):
    run = apply("wechat", lambda db, rng: samples.wechat_status_churn(db, rng, 12))
    changes = run.changed("message")
    assert run.result == len(changes) == 12
    columns = run.after["tables"]["message"]["columns"]
    for old, new in changes.values():
        assert {name for name, a, b in zip(columns, old, new, strict=True) if a != b} == {"status"}


# -- iMessage changes ----------------------------------------------------------------------------

def test_imessage_new_messages_are_joined_to_chats(apply):
    run = apply("imessage", lambda db, rng: samples.imessage_new_messages(db, rng, 10))
    assert run.result == list(range(401, 411))
    assert sorted(run.changed("message")) == run.result
    assert scalar(run.path, "SELECT count(*) FROM chat_message_join WHERE message_id > 400") == 10
    assert scalar(run.path, "SELECT seq FROM sqlite_sequence WHERE name = 'message'") == 410


def test_imessage_edit_keeps_history_in_the_summary_blob(apply):
    def edit_twice(db, rng):
        rowid = samples.imessage_edit(db, rng)
        return rowid, samples.imessage_edit(db, rng, rowid)
    run = apply("imessage", edit_twice)
    rowid, again = run.result
    assert again == rowid and list(run.changed("message")) == [rowid]
    text, date, edited, summary, from_me = query(
        run.path, "SELECT text, date, date_edited, message_summary_info, is_from_me FROM message WHERE ROWID = ?",
        rowid)[0]
    assert text is None and from_me == 1 and date < edited
    assert len(plistlib.loads(summary)["ec"]["0"]) == 3  # the original and two edits


def test_imessage_delete_cascades_and_is_logged(apply):
    run = apply("imessage", samples.imessage_delete)
    old, _ = run.changed("message")[run.result]
    assert scalar(run.path, "SELECT count(*) FROM chat_message_join WHERE message_id = ?", run.result) == 0
    assert scalar(run.path, "SELECT count(*) FROM deleted_messages WHERE guid = ?",
                  run.value("message", "guid", old)) == 1


def test_imessage_never_reuses_a_rowid(apply):
    run = apply("imessage", lambda db, rng: (samples.imessage_delete(db, rng, 400),
                                             samples.imessage_new_messages(db, rng, 1)))
    assert run.result == (400, [401])


# -- WhatsApp changes ----------------------------------------------------------------------------

def test_whatsapp_new_messages_update_chats_and_search(apply):
    run = apply("whatsapp", lambda db, rng: samples.whatsapp_new_messages(db, rng, 10))
    assert run.result == list(range(401, 411))
    with_text = query(run.path, "SELECT _id FROM message WHERE _id > 400 AND text_data IS NOT NULL")
    assert sorted(run.changed("message_ftsv2_content")) == [rowid for (rowid,) in with_text]
    assert scalar(run.path, "SELECT count(*) FROM chat WHERE last_message_row_id !="
                            " (SELECT max(_id) FROM message WHERE chat_row_id = chat._id)") == 0


def test_whatsapp_delete_for_everyone_leaves_a_type_15_row(apply):
    run = apply("whatsapp", samples.whatsapp_delete_for_everyone)
    assert query(run.path, "SELECT message_type, text_data FROM message WHERE _id = ?", run.result) == [(15, None)]
    assert scalar(run.path, "SELECT count(*) FROM message_ftsv2 WHERE rowid = ?", run.result) == 0
    assert scalar(run.path, "SELECT count(*) FROM message_revoked WHERE message_row_id = ?", run.result) == 1


@pytest.mark.parametrize(("app", "change"), [(app, name) for app, sample in sorted(samples.SAMPLE_APPS.items())
                                             for name in sample.changes])
def test_every_registered_change_changes_something_and_keeps_the_file_sound(apply, app, change):
    run = apply(app, samples.SAMPLE_APPS[app].changes[change], messages=150)
    assert run.before != run.after
    assert scalar(run.path, "PRAGMA integrity_check") == "ok"


# -- the fidelity check --------------------------------------------------------------------------

def make_db(path: Path, *statements: str | tuple[str, tuple]) -> Path:
    """A database made by running `statements`, each SQL text or (SQL, parameters)."""
    db = connect(path)
    try:
        for statement in statements:
            db.execute(*((statement,) if isinstance(statement, str) else statement))
    finally:
        db.close()
    return path


def test_values_of_different_storage_classes_differ(tmp_path):
    states, paths = [], []
    for number, value in enumerate((1, 1.0, "1", b"1")):
        paths.append(make_db(tmp_path / f"{number}.db", "CREATE TABLE t (x)", ("INSERT INTO t VALUES (?)", (value,))))
        states.append(logical_state(paths[-1]))
    assert all(states[i] != states[j] for i in range(4) for j in range(i + 1, 4))
    with pytest.raises(AssertionError, match=r"table 't', rowid 1, column 'x': expected \('integer', 1\),"
                                             r" actual \('real', 1.0\)"):
        assert_same_database(paths[0], paths[1])
    with pytest.raises(AssertionError, match=r"\('text', '1'\), actual \('blob', b'1'\)"):
        assert_same_database(paths[2], paths[3])


def test_a_changed_rowid_is_a_difference(tmp_path):
    a = make_db(tmp_path / "a.db", "CREATE TABLE t (x)", "INSERT INTO t (rowid, x) VALUES (1, 'hi')")
    b = make_db(tmp_path / "b.db", "CREATE TABLE t (x)", "INSERT INTO t (rowid, x) VALUES (2, 'hi')")
    assert logical_state(a) != logical_state(b)
    with pytest.raises(AssertionError, match="rowid 1 missing from actual"):
        assert_same_database(a, b)


def test_a_table_with_a_column_named_rowid_still_compares_rowids(tmp_path):
    schema = "CREATE TABLE t (rowid TEXT, oid INT)"  # only _rowid_ still names the rowid
    a = make_db(tmp_path / "a.db", schema, "INSERT INTO t (_rowid_, rowid) VALUES (5, 'x')")
    b = make_db(tmp_path / "b.db", schema, "INSERT INTO t (_rowid_, rowid) VALUES (6, 'x')")
    assert logical_state(a)["tables"]["t"]["rows"] == [(5, (("text", "x"), ("null", None)))]
    with pytest.raises(AssertionError, match="rowid 5 missing"):
        assert_same_database(a, b)


def test_without_rowid_tables_are_keyed_by_primary_key(tmp_path):
    schema = "CREATE TABLE t (k TEXT PRIMARY KEY, v) WITHOUT ROWID"
    a = make_db(tmp_path / "a.db", schema, "INSERT INTO t VALUES ('b', 2), ('a', 1)")
    b = make_db(tmp_path / "b.db", schema, "INSERT INTO t VALUES ('a', 1), ('b', 3)")
    assert logical_state(a)["tables"]["t"]["rows"][0] == ((("text", "a"),), (("text", "a"), ("integer", 1)))
    with pytest.raises(AssertionError, match=r"key \(\('text', 'b'\),\), column 'v'"):
        assert_same_database(a, b)


def test_settings_and_schema_text_are_part_of_the_state(tmp_path):
    a = make_db(tmp_path / "a.db", "CREATE TABLE t (x)", "PRAGMA user_version = 7")
    b = make_db(tmp_path / "b.db", "CREATE TABLE t (x)", "PRAGMA user_version = 8")
    c = make_db(tmp_path / "c.db", "CREATE TABLE t ( x )", "PRAGMA user_version = 7")
    assert len({repr(logical_state(p)) for p in (a, b, c)}) == 3
    with pytest.raises(AssertionError, match="pragma 'user_version' differs: expected 7, actual 8"):
        assert_same_database(a, b)
    with pytest.raises(AssertionError, match="schema entry 't' differs"):
        assert_same_database(a, c)
    assert "rootpage" not in repr(logical_state(a)["schema"])


def test_identical_copies_compare_equal(tmp_path):
    samples.create_imessage(tmp_path / "a.db", messages=50)
    shutil.copyfile(tmp_path / "a.db", tmp_path / "b.db")
    assert logical_state(tmp_path / "a.db") == logical_state(tmp_path / "b.db")
    assert_same_database(tmp_path / "a.db", tmp_path / "b.db")


def test_a_corrupt_actual_database_fails_the_integrity_check(tmp_path):
    schema = ("CREATE TABLE t (x, y)", "CREATE INDEX t_x ON t (x)", "INSERT INTO t VALUES (1, 2), (3, 4)")
    good = make_db(tmp_path / "good.db", *schema)
    bad = make_db(tmp_path / "bad.db", *schema, "PRAGMA writable_schema = ON",
                  # The index now claims to cover y, but its entries hold x.
                  "UPDATE sqlite_schema SET sql = 'CREATE INDEX t_x ON t (y)' WHERE name = 't_x'")
    with pytest.raises(AssertionError, match="integrity_check"):
        assert_same_database(good, bad)


def test_wal_content_is_read_and_the_folder_is_left_alone(tmp_path):
    phone, landed = tmp_path / "phone", tmp_path / "landed"
    phone.mkdir()
    landed.mkdir()
    samples.create_whatsapp(phone / "msgstore.db", messages=50)
    db = connect(phone / "msgstore.db")
    try:
        db.execute("PRAGMA wal_autocheckpoint = 0")
        samples.whatsapp_new_messages(db, random.Random(1), 5)  # these rows live only in the -wal
        for name in ("msgstore.db", "msgstore.db-wal"):  # what a backup tool would drop off
            shutil.copyfile(phone / name, landed / name)
        phone_files = sorted(os.listdir(phone))
        live = logical_state(phone / "msgstore.db")
        assert sorted(os.listdir(phone)) == phone_files
    finally:
        db.close()

    state = logical_state(landed / "msgstore.db")
    assert max(key for key, _ in state["tables"]["message"]["rows"]) == 55
    assert state == live
    assert_same_database(phone / "msgstore.db", landed / "msgstore.db")
    assert sorted(os.listdir(landed)) == ["msgstore.db", "msgstore.db-wal"]
