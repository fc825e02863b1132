"""Property: for any sequence of app-like changes, every version restores exactly.

Hypothesis drives a chat-like database through inserts (one by one and in backlogs),
in-place edits, deletes, rowid reuse, whole-chat deletes, VACUUM of a table without a
primary key, WITHOUT ROWID upserts, ADD COLUMN, new and dropped tables, indexes,
user_version, page-size, journal-mode and auto_vacuum changes, an older copy put back
(files that shrink), overflow blobs and FTS5, syncing between batches. Restoring each
version must give back, cell by cell with storage classes and rowids, what the phone
held when that version was archived.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import Harness, scratch_dir

SCHEMA = """
CREATE TABLE message(msgId INTEGER PRIMARY KEY, talker TEXT, content TEXT, createTime INTEGER, lvbuffer BLOB);
CREATE TABLE rcontact(username TEXT PRIMARY KEY, nickname TEXT);
CREATE TABLE receipts(msgId, reader, at REAL);
CREATE TABLE settings(section TEXT, key TEXT COLLATE NOCASE, value, PRIMARY KEY(section, key)) WITHOUT ROWID;
CREATE VIRTUAL TABLE message_fts USING fts5(content);
INSERT INTO rcontact VALUES ('wxid_a', 'A'), ('wxid_b', 'B'), ('42@chatroom', '群');
"""
TALKERS = ["wxid_a", "wxid_b", "42@chatroom"]

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.integers(min_value=3_000, max_value=150_000).map(lambda n: bytes(i % 251 for i in range(n))),  # overflow pages
)
operations = st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 5), st.sampled_from(TALKERS), values),
    st.tuples(st.just("edit"), st.integers(0, 1000), values),
    st.tuples(st.just("catch_up"), st.integers(100, 3000)),
    st.tuples(st.just("recall"), st.integers(0, 1000)),
    st.tuples(st.just("delete"), st.integers(0, 1000)),
    st.tuples(st.just("delete_range"), st.integers(0, 1000), st.integers(1, 300)),
    st.tuples(st.just("reuse_rowid"), values),
    st.tuples(st.just("delete_chat"), st.sampled_from(TALKERS)),
    st.tuples(st.just("receipt"), values, values),
    st.tuples(st.just("vacuum")),
    st.tuples(st.just("setting"), st.sampled_from(["Theme", "theme", "font", "proxy"]), values),
    st.tuples(st.just("add_column"), st.sampled_from(["0", "NULL", "'x'", "1.5"])),
    st.tuples(st.just("new_table"), st.integers(0, 3)),
    st.tuples(st.just("drop_table"), st.integers(0, 3)),
    st.tuples(st.just("index"), st.booleans()),
    st.tuples(st.just("user_version"), st.integers(0, 2**31 - 1)),
    st.tuples(st.just("page_size"), st.sampled_from([1024, 4096, 8192])),
    st.tuples(st.just("journal_mode"), st.sampled_from(["WAL", "DELETE"])),
    st.tuples(st.just("auto_vacuum"), st.sampled_from(["NONE", "FULL", "INCREMENTAL"])),
    st.tuples(st.just("incremental_vacuum"), st.integers(1, 50)),
    st.tuples(st.just("backup")),
    st.tuples(st.just("put_back")),
    st.tuples(st.just("fts"), st.text(max_size=40)),
)


# The database as the last "backup" op left it (of the running example's file only):
# "put_back" restores it, as a phone restored from an older backup does (the file may shrink).
BACKUPS: dict[str, bytes] = {}


def apply_operation(db, op) -> None:
    """Do to the database what a chat app would."""
    kind, *args = op
    ids = [r for (r,) in db.execute("SELECT msgId FROM message ORDER BY msgId")]
    pick = (lambda i: ids[i % len(ids)]) if ids else None
    if kind == "insert":
        n, talker, value = args
        for _ in range(n):
            db.execute("INSERT INTO message(talker, content, createTime, lvbuffer) VALUES (?, ?, ?, ?)",
                       (talker, value, len(ids), value))
    elif kind == "catch_up":
        # A phone back online fetches a backlog at once: many new leaf pages in one commit.
        db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                   "INSERT INTO message(talker, content, createTime) SELECT 'wxid_a', 'm' || i, i FROM n", (args[0],))
    elif kind == "edit" and pick:
        db.execute("UPDATE message SET content = ? WHERE msgId = ?", (args[1], pick(args[0])))
    elif kind == "recall" and pick:
        db.execute("UPDATE message SET content = '\"A\" 撤回了一条消息', lvbuffer = NULL WHERE msgId = ?", (pick(args[0]),))
    elif kind == "delete" and pick:
        db.execute("DELETE FROM message WHERE msgId = ?", (pick(args[0]),))
    elif kind == "delete_range" and pick:
        # A run of neighbours, as when a day's messages go: whole leaf pages empty out.
        start = args[0] % len(ids)
        db.execute("DELETE FROM message WHERE msgId BETWEEN ? AND ?", (ids[start], ids[min(start + args[1], len(ids) - 1)]))
    elif kind == "reuse_rowid" and ids:
        # WeChat has no AUTOINCREMENT: deleting the newest row frees its id for the next message.
        db.execute("DELETE FROM message WHERE msgId = ?", (ids[-1],))
        db.execute("INSERT INTO message(talker, content) VALUES ('wxid_b', ?)", (args[0],))
    elif kind == "delete_chat":
        db.execute("DELETE FROM message WHERE talker = ?", (args[0],))
    elif kind == "receipt":
        db.execute("INSERT INTO receipts VALUES (?, ?, ?)", (len(ids), args[0], args[1]))
    elif kind == "vacuum":
        db.execute("DELETE FROM receipts WHERE rowid IN (SELECT rowid FROM receipts LIMIT 1)")
        db.execute("VACUUM")
    elif kind == "setting":
        db.execute("INSERT OR REPLACE INTO settings VALUES ('ui', ?, ?)", (args[0], args[1]))
    elif kind == "add_column":
        n = len(db.execute("PRAGMA table_info(message)").fetchall())
        db.execute(f"ALTER TABLE message ADD COLUMN extra{n} DEFAULT {args[0]}")
    elif kind == "new_table":
        db.execute(f"CREATE TABLE IF NOT EXISTS extra{args[0]}(id INTEGER PRIMARY KEY AUTOINCREMENT, v)")
        db.execute(f"INSERT INTO extra{args[0]}(v) VALUES (randomblob(8))")
    elif kind == "drop_table":
        db.execute(f"DROP TABLE IF EXISTS extra{args[0]}")
    elif kind == "index":
        db.execute("CREATE INDEX IF NOT EXISTS byTime ON message(createTime)" if args[0] else "DROP INDEX IF EXISTS byTime")
    elif kind == "user_version":
        db.execute(f"PRAGMA user_version = {args[0]}")
    elif kind == "page_size":
        mode = db.execute("PRAGMA journal_mode").fetchall()[0][0]
        db.execute("PRAGMA journal_mode = DELETE").fetchall()  # WAL databases can't change page size
        db.execute(f"PRAGMA page_size = {args[0]}")
        db.execute("VACUUM")
        db.execute(f"PRAGMA journal_mode = {mode}").fetchall()
    elif kind == "journal_mode":
        db.execute(f"PRAGMA journal_mode = {args[0]}").fetchall()
    elif kind == "auto_vacuum":
        # Then deletes shrink the file (FULL: at each commit; INCREMENTAL: when asked), moving pages.
        db.execute(f"PRAGMA auto_vacuum = {args[0]}")
        db.execute("VACUUM")
    elif kind == "incremental_vacuum":
        db.execute(f"PRAGMA incremental_vacuum({args[0]})").fetchall()
    elif kind == "backup":
        BACKUPS.clear()
        BACKUPS[db.filename] = db.serialize("main")
    elif kind == "put_back" and db.filename in BACKUPS:
        # What `cp older.db chat.db` does; the app's connection sees another change counter and
        # rereads. A WAL file's pages live partly in its -wal, so only rollback-journal ones.
        older = BACKUPS[db.filename]
        same_pages = int.from_bytes(older[16:18], "big") == db.execute("PRAGMA page_size").fetchall()[0][0]
        if same_pages and older[18] == 1 and db.execute("PRAGMA journal_mode").fetchall()[0][0] != "wal":
            with open(db.filename, "r+b") as f:
                f.write(older)
                f.truncate()
    elif kind == "fts":
        db.execute("INSERT INTO message_fts(content) VALUES (?)", (args[0],))


@given(batches=st.lists(st.lists(operations, min_size=1, max_size=4), min_size=1, max_size=6))
def test_random_app_changes_round_trip(pm, batches):
    with scratch_dir() as tmp:
        phone = Harness(Path(tmp), pm)
        phone.execute(SCHEMA)
        phone.sync()
        for batch in batches:
            db = phone.connect()
            for op in batch:
                apply_operation(db, op)
            db.close()
            phone.sync()
        assert phone.sync().version is None, "a pass without changes made a version"
        phone.check_all_versions()
