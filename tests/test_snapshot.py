"""Snapshots: a private replica of one moment, kept up to date without touching the phone's folder."""

from __future__ import annotations

import os
from pathlib import Path

import apsw
import pytest

from syncd.capture import snapshot as snapshot_module
from syncd.errors import SourceError
from syncd.capture.snapshot import SnapshotStore


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "phone" / "chat.db"
    path.parent.mkdir()
    db = apsw.Connection(str(path))
    db.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'a')")
    db.close()
    return path


@pytest.fixture
def store(tmp_path):
    return SnapshotStore(tmp_path / "state")


def rows(path):
    db = apsw.Connection(str(path))
    try:
        return db.execute("SELECT * FROM message").fetchall()
    finally:
        db.close()


def many_rows(first, last):
    """SQL adding rows `first`..`last`, about a page each."""
    return (f"WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) "
            "INSERT INTO message SELECT i, zeroblob(4000) FROM n")


def write(path, sql):
    db = apsw.Connection(str(path))
    db.execute(sql)
    db.close()


def test_a_copy_torn_by_a_writer_is_retried(database, store, monkeypatch):
    monkeypatch.setattr(snapshot_module, "STABLE_COPY_DELAY", 0.01)
    real_patch = SnapshotStore._patch
    calls = []

    def patch_while_the_app_writes(self, source, past, digests):
        past = real_patch(self, source, past, digests)
        if not calls:  # the app commits a new message right after the first read
            write(database, "INSERT INTO message VALUES (2, 'b')")
        calls.append(source)
        return past

    monkeypatch.setattr(SnapshotStore, "_patch", patch_while_the_app_writes)
    snap = store.take(database)
    assert rows(snap.path) == [(1, "a"), (2, "b")]
    assert len(calls) == 2


def test_a_file_that_never_holds_still_is_refused(database, store, monkeypatch):
    monkeypatch.setattr(snapshot_module, "STABLE_COPY_DELAY", 0.001)
    real_patch = SnapshotStore._patch

    def always_torn(self, source, past, digests):
        past = real_patch(self, source, past, digests)
        os.utime(source, ns=(0, os.stat(source).st_mtime_ns + 1))
        return past

    monkeypatch.setattr(SnapshotStore, "_patch", always_torn)
    with pytest.raises(SourceError, match="kept changing"):
        store.take(database)


def test_reading_leaves_access_time_alone(database, store):
    os.utime(database, ns=(1_000_000_000, 2_000_000_000))  # an old atime that reading would refresh
    store.take(database)
    st = database.stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000, 2_000_000_000)
    assert sorted(p.name for p in database.parent.iterdir()) == ["chat.db"]


def test_unchanged_files_are_not_read_again(database, store):
    store.settle(store.take(database))
    again = store.take(database)
    assert again.unchanged
    write(database, "INSERT INTO message VALUES (2, 'b')")
    changed = store.take(database)
    assert not changed.unchanged and rows(changed.path) == [(1, "a"), (2, "b")]


def test_old_bytes_of_changed_pages_are_kept(database, store):
    store.settle(store.take(database))
    write(database, "UPDATE message SET body = 'edited' WHERE id = 1")
    snap = store.take(database)
    assert snap.past is not None and 2 in snap.past  # the message table's only page
    assert b"edited" not in snap.past[2] and b"edited" in open(snap.path, "rb").read()


def test_chunks_the_phone_did_not_touch_are_not_read_from_the_replica(database, store, monkeypatch):
    write(database, many_rows(2, 1499))
    store.settle(store.take(database))
    write(database, "UPDATE message SET body = 'edited' WHERE id = 1499")
    replica_reads = []
    real_preadv, real_pread = os.preadv, os.pread

    def count(fd, n):
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(store.replica):
            replica_reads.append(n)

    def counting_preadv(fd, buffers, offset):
        n = real_preadv(fd, buffers, offset)
        count(fd, n)
        return n

    def counting_pread(fd, size, offset):
        data = real_pread(fd, size, offset)
        count(fd, len(data))
        return data

    monkeypatch.setattr(snapshot_module.os, "preadv", counting_preadv)
    monkeypatch.setattr(snapshot_module.os, "pread", counting_pread)
    snap = store.take(database)
    # The block with the edited row, and the first (every commit bumps the header's counter).
    assert 0 < sum(replica_reads) <= 2 * snapshot_module.BLOCK < database.stat().st_size / 20
    assert rows(snap.path)[-1] == (1499, "edited")


@pytest.mark.parametrize("how", ["past outgrows its cap midway", "replica untrusted", "replica trusted"])
def test_every_path_through_a_pass_leaves_the_replica_equal_to_the_phone(database, store, monkeypatch, how):
    write(database, many_rows(2, 1499))
    snap = store.take(database)
    if how != "replica untrusted":
        store.settle(snap)
    if how == "past outgrows its cap midway":
        monkeypatch.setattr(snapshot_module, "MAX_PAST_BYTES", 8 * 4096)
    # Rows changed all over the file, and new ones past its old end.
    write(database, "UPDATE message SET body = randomblob(3000) WHERE id % 7 = 0; " + many_rows(1500, 2999))
    snap = store.take(database)
    assert store.replica.read_bytes() == database.read_bytes()
    if how == "replica trusted":
        assert snap.past and snap.why_full is None
    else:
        assert snap.past is None and snap.why_full


def test_a_pass_that_fails_midway_raises_and_the_next_one_starts_over(database, store, monkeypatch):
    write(database, many_rows(2, 1499))
    store.settle(store.take(database))
    write(database, "UPDATE message SET body = 'edited' WHERE id % 50 = 0")

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(snapshot_module, "_patch_pages", disk_full)
        with pytest.raises(OSError, match="No space left"):
            store.take(database)
    snap = store.take(database)
    assert snap.past is None and "interrupted" in snap.why_full
    assert store.replica.read_bytes() == database.read_bytes()


def test_an_interrupted_pass_is_not_trusted(database, store):
    store.take(database)  # never settled: like a crash before the version was archived
    write(database, "INSERT INTO message VALUES (2, 'b')")
    snap = store.take(database)
    assert snap.past is None and "interrupted" in snap.why_full


def test_commits_still_in_the_wal_are_read_without_reading_the_database_file(tmp_path, store, monkeypatch):
    path = tmp_path / "wal.db"
    app = apsw.Connection(str(path))
    app.execute("PRAGMA journal_mode = WAL").fetchall()
    app.execute("PRAGMA wal_autocheckpoint = 0")
    app.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'a')")
    store.settle(store.take(path))
    app.execute("INSERT INTO message VALUES (2, 'only in the wal')")  # the database file is untouched
    patched = []
    monkeypatch.setattr(SnapshotStore, "_patch", lambda self, *a: patched.append(a) or a[-2:])
    snap = store.take(path)
    app.close()
    assert patched == [] and rows(snap.path) == [(1, "a"), (2, "only in the wal")]
    assert snap.past is not None  # and detection stays incremental


def test_a_change_made_after_the_read_is_not_taken_as_archived(database, store):
    snap = store.take(database)
    write(database, "INSERT INTO message VALUES (2, 'b')")  # between reading and archiving
    store.settle(snap)
    again = store.take(database)
    assert not again.unchanged and rows(again.path) == [(1, "a"), (2, "b")]


def test_a_live_wal_database_costs_its_wal_not_its_file(tmp_path, monkeypatch, pm):
    """macOS Messages keeps its commits in chat.db-wal for hours: a whole pass, detection and
    delivery included, reads the -wal and the main file's header, not the main file."""
    from syncd.sync import sync

    path, target, state = tmp_path / "phone" / "chat.db", tmp_path / "nas", tmp_path / "state"
    path.parent.mkdir()
    app = apsw.Connection(str(path))
    app.execute("PRAGMA journal_mode = WAL").fetchall()
    app.execute("PRAGMA wal_autocheckpoint = 0")  # the app checkpoints when it likes, not now
    app.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT)")
    app.execute(many_rows(1, 500))  # about 2 MiB in the main file
    app.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    sync(path, [str(target)], state_dir=state, pm=pm)
    main = path.stat()
    app.execute("INSERT INTO message VALUES (501, 'only in the wal'); UPDATE message SET body = 'x' WHERE id = 7")
    wal = Path(f"{path}-wal").stat().st_size
    read = {"main": 0, "wal": 0}
    real_pread, real_preadv, real_read = os.pread, os.preadv, os.read

    def count(fd, n):
        name = os.path.realpath(f"/proc/self/fd/{fd}")
        for kind, whose in (("main", str(path)), ("wal", f"{path}-wal")):
            if name == whose:
                read[kind] += n
        return n

    monkeypatch.setattr(os, "pread", lambda fd, n, at: _counted(count, fd, real_pread(fd, n, at)))
    monkeypatch.setattr(os, "preadv", lambda fd, buffers, at: count(fd, real_preadv(fd, buffers, at)))
    monkeypatch.setattr(os, "read", lambda fd, n: _counted(count, fd, real_read(fd, n)))
    report = sync(path, [str(target)], state_dir=state, pm=pm)
    monkeypatch.undo()
    app.close()
    assert (main.st_ino, main.st_size, main.st_mtime_ns) == (path.stat().st_ino, path.stat().st_size,
                                                              main.st_mtime_ns)  # untouched until the close
    assert report.version.rows["added"] == 1 and report.version.rows["changed"] == 1
    assert report.detection.path == "incremental"
    assert read["wal"] == wal and read["main"] <= 2 * 4096 < main.st_size // 50  # its header


def _counted(count, fd, data: bytes) -> bytes:
    count(fd, len(data))
    return data
