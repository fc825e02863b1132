"""A media pass holds no list of the files: the folder, the last scan and the store's files stream by
in path order, so memory does not grow with the tree; what replaced the lists keeps its promises."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from syncd.media import store as store_module
from syncd.media.backup import back_up
from syncd.media.known import FILE as KNOWN_FILES
from syncd.media.listing import read_listing
from syncd.media.restore import restore_media
from syncd.media.scan import walk
from syncd.media.area import PlainArea
from syncd.media.store import INDEX, OBJECTS, read_index
from syncd.plugins import open_backend, plugin_manager
from test_media_store import make_tree, tree


@pytest.fixture
def target(tmp_path):
    (tmp_path / "target").mkdir()
    return open_backend(plugin_manager(), str(tmp_path / "target"))


def tiny_tree(folder, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        path = folder / f"{i // 500:03d}" / f"IMG-{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%d" % i * 3)


def test_the_walk_streams_paths_in_plain_string_order(tmp_path):
    names = ["a0", "a.b", "a-b/x", "a/b0", "a/b.c/d", "a/b/c", "a/b-c", "ab", "A", "Z/z", "é/e", "a b"]
    make_tree(tmp_path / "m", {name: b"x" for name in names})
    os.symlink(tmp_path / "m" / "ab", tmp_path / "m" / "link")  # never followed, never listed
    walked = [rel for rel, _ in walk(tmp_path / "m")]
    assert walked == sorted(names)


def peak_of(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_pass_holds_as_much_for_8000_files_as_for_2000(tmp_path, monkeypatch):
    # Small batches, so that the bounded buffers are full already at 2,000 files.
    monkeypatch.setattr(store_module, "PACK_FILES", 300)
    monkeypatch.setattr(store_module, "INDEX_FILES", 300)
    peaks = {}
    for count in (2000, 8000):
        media, state = tmp_path / f"m{count}", tmp_path / f"s{count}"
        (tmp_path / f"t{count}").mkdir()
        store = open_backend(plugin_manager(), str(tmp_path / f"t{count}"))
        tiny_tree(media, count)
        first = peak_of(lambda: back_up(store, media, state))
        again = peak_of(lambda: back_up(store, media, state))
        peaks[count] = (first, again)
        assert back_up(store, media, state).files == count
    (small_first, small_again), (big_first, big_again) = peaks[2000], peaks[8000]
    assert big_first < 1.5 * small_first, peaks  # four times the files, not four times the memory
    assert big_again < 1.5 * small_again, peaks


def test_a_large_pass_writes_its_index_in_parts_and_restores_whole(tmp_path, target, monkeypatch):
    monkeypatch.setattr(store_module, "PACK_FILES", 50)
    monkeypatch.setattr(store_module, "INDEX_FILES", 100)
    tiny_tree(tmp_path / "media", 230)
    done = back_up(target, tmp_path / "media", tmp_path / "state")
    assert len(target.list(OBJECTS)) == 5  # packs of 50 files
    assert len(target.list(INDEX)) == 3  # 100 + 100 + 30, each written after the packs it names
    restore_media(target, done.listing, tmp_path / "back")
    assert tree(tmp_path / "back") == tree(tmp_path / "media")


def test_a_store_that_lost_an_index_gets_its_files_again(tmp_path, target, monkeypatch):
    monkeypatch.setattr(store_module, "PACK_FILES", 50)
    monkeypatch.setattr(store_module, "INDEX_FILES", 50)
    tiny_tree(tmp_path / "media", 120)
    first = back_up(target, tmp_path / "media", tmp_path / "state")
    lost = target.list(INDEX)[0].name
    named = read_index(PlainArea(target), lost.rsplit("/", 1)[1])
    target.delete(lost)
    again = back_up(target, tmp_path / "media", tmp_path / "state")
    assert again.files_read == len(named) > 0  # the files that index named, and only they
    assert again.listing == first.listing
    restore_media(target, again.listing, tmp_path / "back")
    assert tree(tmp_path / "back") == tree(tmp_path / "media")


def test_a_lost_store_table_is_filled_again_from_the_store_without_reading_a_file(tmp_path, target):
    tiny_tree(tmp_path / "media", 60)
    first = back_up(target, tmp_path / "media", tmp_path / "state")
    (tmp_path / "state" / "media" / KNOWN_FILES).write_bytes(b"not a database at all" * 100)
    again = back_up(target, tmp_path / "media", tmp_path / "state")
    assert (again.files_read, again.bytes_sent, again.listing) == (0, 0, first.listing)
    (tmp_path / "state" / "media" / KNOWN_FILES).unlink()
    assert back_up(target, tmp_path / "media", tmp_path / "state").files_read == 0


def test_new_changed_and_gone_files_among_unchanged_ones(tmp_path, target):
    tiny_tree(tmp_path / "media", 30)
    back_up(target, tmp_path / "media", tmp_path / "state")
    (tmp_path / "media/000/IMG-000003.jpg").unlink()
    (tmp_path / "media/000/IMG-000010.jpg").write_bytes(b"changed")
    (tmp_path / "media/000/IMG-000020a.jpg").write_bytes(b"new")
    (tmp_path / "media/000/IMG-000029.jpg").unlink()  # the last one: gone after every file matched
    again = back_up(target, tmp_path / "media", tmp_path / "state")
    assert (again.files, again.files_read) == (29, 2)
    listed = {f.path for f in read_listing(target, again.listing)}
    assert listed == {rel for rel, _ in walk(tmp_path / "media")}
    third = back_up(target, tmp_path / "media", tmp_path / "state")
    assert (third.files, third.files_read, third.listing) == (29, 0, again.listing)
