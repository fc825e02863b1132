"""Snapshots: a private copy of one moment, taken without touching the phone's folder."""

from __future__ import annotations

import os

import apsw
import pytest

from syncd import snapshot as snapshot_module
from syncd.errors import SourceError
from syncd.snapshot import take_snapshot


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "phone" / "chat.db"
    path.parent.mkdir()
    db = apsw.Connection(str(path))
    db.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'a')")
    db.close()
    return path


def rows(path):
    db = apsw.Connection(str(path))
    try:
        return db.execute("SELECT * FROM message").fetchall()
    finally:
        db.close()


def test_a_copy_torn_by_a_writer_is_retried(database, tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot_module, "STABLE_COPY_DELAY", 0.01)
    real_copy = snapshot_module._copy_file
    calls = []

    def copy_while_the_app_writes(src, dst):
        done = real_copy(src, dst)
        if not calls:  # the app commits a new message right after the first read
            db = apsw.Connection(str(database))
            db.execute("INSERT INTO message VALUES (2, 'b')")
            db.close()
        calls.append(src)
        return done

    monkeypatch.setattr(snapshot_module, "_copy_file", copy_while_the_app_writes)
    with take_snapshot(database, tmp_path / "staging") as snap:
        assert rows(snap.path) == [(1, "a"), (2, "b")]
    assert len(calls) == 2


def test_a_file_that_never_holds_still_is_refused(database, tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot_module, "STABLE_COPY_DELAY", 0.001)
    real_copy = snapshot_module._copy_file

    def always_torn(src, dst):
        real_copy(src, dst)
        os.utime(src, ns=(0, os.stat(src).st_mtime_ns + 1))
        return True

    monkeypatch.setattr(snapshot_module, "_copy_file", always_torn)
    with pytest.raises(SourceError, match="kept changing"):
        take_snapshot(database, tmp_path / "staging")
    assert not (tmp_path / "staging").exists()


def test_reading_leaves_access_time_alone(database, tmp_path):
    os.utime(database, ns=(1_000_000_000, 2_000_000_000))  # an old atime that reading would refresh
    with take_snapshot(database, tmp_path / "staging"):
        pass
    st = database.stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000, 2_000_000_000)
    assert sorted(p.name for p in database.parent.iterdir()) == ["chat.db"]


def test_discarding_removes_the_private_copy(database, tmp_path):
    with take_snapshot(database, tmp_path / "staging") as snap:
        assert snap.path.exists() and snap.size == database.stat().st_size
    assert not snap.path.exists()
