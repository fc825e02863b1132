"""Incremental change detection: cheap where it can be, and never different from the full comparison."""

from __future__ import annotations

import random
import shutil
from contextlib import closing
from pathlib import Path

import apsw
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from conftest import Harness, scratch_dir
from syncd import samples
from syncd.capture.btree import PageFile, PastPageFile, Unmappable
from syncd.capture.detect import merge
from syncd.errors import SourceError
from syncd.sync import sync
from test_property import SCHEMA, apply_operation, operations


def changes(state: Path, source: str, number: int) -> set:
    """The row changes of one version, as a set of (table, op, old, new) with typed values."""
    objects = state / "sources" / source / "archive" / source / "objects"
    (delta,) = objects.glob(f"{number:010d}-delta-*")
    raw = zstandard.ZstdDecompressor().stream_reader(open(delta, "rb")).read()
    typed = lambda values: None if values is None else tuple((type(v).__name__, v) for v in values)  # noqa: E731
    return {(c.name, c.op, typed(c.old), typed(c.new)) for c in apsw.Changeset.iter(raw)}


class Twins:
    """One phone database archived twice: incrementally, and with --full every time."""

    def __init__(self, root: Path, pm):
        self.phone = Harness(root, pm)
        self.full_state = root / "state-full"
        self.paths: list[str] = []

    def sync(self) -> None:
        fast = self.phone.sync()
        slow = sync(self.phone.source, [], state_dir=self.full_state, pm=self.phone.pm, full=True)
        assert (fast.version is None) == (slow.version is None), fast.detection
        self.paths.append(fast.detection.path)
        if fast.version:
            n = fast.version.number
            assert n == slow.version.number
            if n > 1:
                name = self.phone.source.name
                assert changes(self.phone.state, name, n) == changes(self.full_state, name, n), fast.detection


@given(batches=st.lists(st.lists(operations, min_size=1, max_size=3), min_size=1, max_size=6), seed=st.integers(0, 9))
def test_the_fast_path_finds_exactly_what_the_full_comparison_finds(pm, batches, seed):
    with scratch_dir() as tmp:
        twins = Twins(Path(tmp), pm)
        twins.phone.execute(SCHEMA)
        # Enough rows that tables span many pages, so ranges and overflow chains matter.
        rng = random.Random(seed)
        db = twins.phone.connect()
        for op in [("insert", 5, "wxid_a", "x" * rng.randint(1, 3000)) for _ in range(50)]:
            apply_operation(db, op)
        db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
                   "INSERT INTO settings SELECT 's' || i, 'k', randomblob(200) FROM n WHERE i <= 300;"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
                   "INSERT INTO receipts SELECT i, 'r', i * 0.5 FROM n")
        db.close()
        twins.sync()
        for batch in batches:
            db = twins.phone.connect()
            for op in batch:
                apply_operation(db, op)
            db.close()
            twins.sync()
        twins.phone.check_all_versions()


@pytest.fixture
def wechat(harness):
    harness.source = harness.phone / "EnMicroMsg.db"
    samples.create_wechat(harness.source, messages=20_000, seed=3)
    harness.sync()
    return harness


def change(harness, action, *args):
    with closing(harness.connect()) as db:
        return action(db, random.Random(5), *args)


@pytest.mark.parametrize("action, args", [
    (samples.wechat_new_messages, (200,)),
    (samples.wechat_recall, ()),
    (samples.wechat_status_churn, (50,)),
    (samples.wechat_delete_newest, (3,)),
])
def test_app_changes_take_the_incremental_path(wechat, action, args):
    change(wechat, action, *args)
    report = wechat.sync()
    assert report.detection.path == "incremental", report.detection.reason
    assert report.version is not None
    wechat.check_all_versions()


def test_a_deleted_chat_comes_through_whichever_path_runs(wechat):
    """A chat's messages are spread over most pages, so this may well be compared in full."""
    change(wechat, samples.wechat_delete_chat)
    assert wechat.sync().version.rows["deleted"] > 0
    wechat.check_all_versions()


def test_a_pass_over_unchanged_files_reads_no_page(wechat):
    report = wechat.sync()
    assert report.version is None and report.detection.path == "unchanged"


def test_an_older_copy_put_back_takes_the_incremental_path(wechat):
    """A phone restored from last week's backup: the file shrinks to what it was."""
    older = wechat.root / "older.db"
    shutil.copy(wechat.source, older)
    change(wechat, samples.wechat_new_messages, 300)
    grown = wechat.sync()
    shutil.copy(older, wechat.source)
    report = wechat.sync()
    assert report.detection.path == "incremental", report.detection.reason
    assert report.version.rows["deleted"] == grown.version.rows["added"]
    wechat.check_all_versions()


def test_a_page_the_file_no_longer_has_is_unmappable(wechat):
    """The safety net under the map: a page that can't be read means "compare in full", not a crash."""
    new = PageFile(str(wechat.source))
    try:
        old = PastPageFile(new, {}, new.page_count + 3)  # as if 3 pages were cut and not kept
        with pytest.raises(Unmappable, match="no longer in the file"):
            old.read(new.page_count + 1)
    finally:
        new.close()


def test_a_page_that_does_not_parse_is_reported_not_a_traceback(wechat):
    """An interior page claiming more cells than fit: the map gives up, SQLite names the damage."""
    change(wechat, samples.wechat_new_messages, 50)
    with closing(apsw.Connection(str(wechat.source))) as db:
        root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'message'").fetchall()[0][0]
        page_size = db.execute("PRAGMA page_size").fetchall()[0][0]
    with open(wechat.source, "r+b") as f:
        f.seek((root - 1) * page_size + 3)
        f.write(b"\xff\xff")  # the cell count
    with pytest.raises(SourceError, match="damaged"):
        wechat.sync()


@pytest.mark.parametrize("sql, why", [
    ("VACUUM", "VACUUM"),
    ("ALTER TABLE message ADD COLUMN extra TEXT", "schema changed"),
    ("PRAGMA page_size = 8192; VACUUM", "page size"),
])
def test_what_the_map_cannot_follow_is_compared_in_full(wechat, sql, why):
    wechat.execute("DELETE FROM message WHERE msgId % 7 = 0")
    wechat.sync()
    wechat.execute(sql)
    report = wechat.sync()
    assert report.detection.path == "full" and why in report.detection.reason
    wechat.check_all_versions()


def test_full_can_be_asked_for(wechat):
    change(wechat, samples.wechat_new_messages, 5)
    report = sync(wechat.source, [], state_dir=wechat.state, pm=wechat.pm, full=True)
    assert report.detection.path == "full" and "--full" in report.detection.reason


def test_an_interrupted_pass_falls_back_to_full(wechat, monkeypatch):
    change(wechat, samples.wechat_new_messages, 5)
    from syncd.mirror.mirror import Mirror

    def crash(self, version):
        raise KeyboardInterrupt

    monkeypatch.setattr(Mirror, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        wechat.sync()
    monkeypatch.undo()
    report = wechat.sync()
    assert report.detection.path == "full" and "interrupted" in report.detection.reason
    assert report.version.number == 2


def test_merge_joins_touching_and_open_ranges():
    assert merge([(10, 20), (None, 5), (20, 30), (40, None), (35, 50)]) == [(None, 5), (10, 30), (35, None)]
    assert merge([(1, 2), (5, 6)]) == [(1, 2), (5, 6)]


def test_the_phone_folder_stays_untouched_across_incremental_passes(wechat):
    before = {p.name: p.stat().st_mtime_ns for p in wechat.phone.iterdir()}
    change(wechat, samples.wechat_new_messages, 5)
    after_app = {p.name: p.stat().st_mtime_ns for p in wechat.phone.iterdir()}
    wechat.sync()
    assert {p.name: p.stat().st_mtime_ns for p in wechat.phone.iterdir()} == after_app
    assert set(before) == set(after_app)
    shutil.rmtree(wechat.state)  # and a fresh state dir still works: full path, same archive


def test_full_compares_even_files_that_look_untouched(wechat):
    report = sync(wechat.source, [], state_dir=wechat.state, pm=wechat.pm, full=True)
    assert report.detection.path == "full" and report.version is None
