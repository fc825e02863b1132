"""The media pass's faster paths keep their promises: a one-chunk file is hashed once and named by
that hash, writer threads never outlive a pass, and a folder target gets the local store's objects
streamed byte for byte."""

from __future__ import annotations

import random
import threading

import pytest

from syncd.delivery.media import copy_store
from syncd.errors import TransientError
from syncd.media.area import PlainArea, digest
from syncd.media.backup import back_up
from syncd.media.listing import read_listing
from syncd.media.restore import restore_media
from syncd.media.store import CHUNK_SIZE, OBJECTS, SMALL_FILE
from syncd.plugins import open_backend, plugin_manager
from test_media_store import FailingAfter, make_tree, tree


@pytest.fixture
def pm():
    return plugin_manager()


def folder(pm, path):
    path.mkdir()
    return open_backend(pm, str(path))


def test_a_photo_of_one_chunk_is_one_object_named_by_its_hash(tmp_path, pm):
    target = folder(pm, tmp_path / "target")
    photo = random.Random(1).randbytes(SMALL_FILE + 4321)
    make_tree(tmp_path / "media", {"Photos/p.jpg": photo})
    done = back_up(target, tmp_path / "media", tmp_path / "state")
    [listed] = read_listing(target, done.listing)
    assert listed.hash == digest(photo)
    assert [o.name.rsplit("/", 1)[1] for o in target.list(OBJECTS)] == [digest(photo)]
    restore_media(target, done.listing, tmp_path / "back")
    assert (tmp_path / "back/Photos/p.jpg").read_bytes() == photo


def test_no_writer_thread_outlives_a_failed_pass(tmp_path, pm):
    target = folder(pm, tmp_path / "target")
    rnd = random.Random(2)
    make_tree(tmp_path / "media", {f"Video/v{i}.mov": rnd.randbytes(CHUNK_SIZE + 1) for i in range(3)})
    with pytest.raises(TransientError):
        back_up(FailingAfter(target, 1), tmp_path / "media", tmp_path / "state")
    assert not [t for t in threading.enumerate() if t.name.startswith("media-write")]


def test_a_folder_target_gets_every_object_byte_for_byte(tmp_path, pm):
    local = folder(pm, tmp_path / "local")
    rnd = random.Random(3)
    files = {"Stickers/s.webp": rnd.randbytes(30_000), "Photos/p.jpg": rnd.randbytes(3 * SMALL_FILE),
             "Video/v.mov": rnd.randbytes(2 * CHUNK_SIZE + 5)}
    make_tree(tmp_path / "media", files)
    done = back_up(local, tmp_path / "media", tmp_path / "state")
    target = folder(pm, tmp_path / "target")
    sent = copy_store(PlainArea(local), PlainArea(target))
    assert sent == sum(o.size for o in local.list("media/"))
    assert tree(tmp_path / "target") == tree(tmp_path / "local")
    assert copy_store(PlainArea(local), PlainArea(target)) == 0
    restore_media(target, done.listing, tmp_path / "back")
    assert tree(tmp_path / "back") == files


def test_the_last_scan_round_trips_and_a_damaged_one_means_reading_again(tmp_path, pm):
    target = folder(pm, tmp_path / "target")
    media = tmp_path / "media"
    make_tree(media, {"a/one.jpg": b"1" * 100, "b/two.jpg": b"2" * 200})
    (media / "b" / "caf\udce9.jpg".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")).write_bytes(b"3")
    first = back_up(target, media, tmp_path / "state")
    assert (first.files, first.files_read) == (3, 3)
    [state] = (tmp_path / "state" / "media").glob("scan-*")
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    assert back_up(target, media, tmp_path / "state").files_read == 0
    for damage in (state.read_bytes()[:-1], b"", b"not a scan at all" * 10):
        state.write_bytes(damage)
        again = back_up(target, media, tmp_path / "state")
        assert (again.files_read, again.listing, again.bytes_sent) == (3, first.listing, 0)
