"""The media store on a real folder target: dedupe, packing, chunking and resume, skipping unchanged
files, restoring any listing byte for byte, refusing damaged or forged objects."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from syncd.errors import CorruptObject, SyncdError, TransientError
from syncd.media import backup as backup_module
from syncd.media.backup import back_up
from syncd.media.codec import write_meta
from syncd.media.listing import LISTINGS, read_listing
from syncd.media.restore import restore_media
from syncd.media.store import CHUNK_SIZE, OBJECTS, SMALL_FILE
from syncd.plugins import open_backend, plugin_manager


@pytest.fixture
def target(tmp_path):
    (tmp_path / "target").mkdir()
    return open_backend(plugin_manager(), str(tmp_path / "target"))


def make_tree(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stickers(seed: int, count: int) -> dict[str, bytes]:
    rnd = random.Random(seed)
    return {f"Stickers/{i:02x}/s{i}.webp": rnd.randbytes(rnd.randrange(1, 40_000)) for i in range(count)}


def objects(target) -> list:
    return target.list(OBJECTS)


def test_same_bytes_in_two_folders_are_stored_once(tmp_path, target):
    rnd = random.Random(1)
    files = {**stickers(2, 50), "Video/clip.mp4": rnd.randbytes(CHUNK_SIZE + 12345)}
    make_tree(tmp_path / "a", files)
    make_tree(tmp_path / "b", {f"elsewhere/{k}": v for k, v in files.items()})
    first = back_up(target, tmp_path / "a", tmp_path / "state")
    held = sum(o.size for o in objects(target))
    second = back_up(target, tmp_path / "b", tmp_path / "state")
    assert first.bytes_sent >= sum(map(len, files.values()))
    assert (second.bytes_sent, second.objects_sent, second.files) == (0, 0, len(files))
    assert sum(o.size for o in objects(target)) == held


def test_small_files_are_packed(tmp_path, target):
    files = stickers(3, 400)
    make_tree(tmp_path / "media", files)
    result = back_up(target, tmp_path / "media", tmp_path / "state")
    assert result.files == 400
    assert 1 <= len(objects(target)) <= 2  # 400 files, about 8 MB: one pack
    assert len(target.list("media/")) <= 4  # pack, index, listing


class FailingAfter:
    """A target whose writes fail after `allowed` of them: a link that drops midway through an upload."""

    def __init__(self, inner, allowed: int):
        self.inner, self.allowed = inner, allowed

    def write(self, name, data):
        if self.allowed == 0:
            raise TransientError("the link dropped")
        self.allowed -= 1
        self.inner.write(name, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_large_file_is_chunked_and_an_interrupted_upload_resumes(tmp_path, target):
    video = random.Random(4).randbytes(2 * CHUNK_SIZE + 777)
    make_tree(tmp_path / "media", {"Video/long.mov": video})
    with pytest.raises(TransientError):
        back_up(FailingAfter(target, 2), tmp_path / "media", tmp_path / "state")
    assert [o.size for o in objects(target)] and sum(o.size for o in objects(target)) == 2 * CHUNK_SIZE
    assert target.list(LISTINGS) == []  # nothing names the chunks yet
    result = back_up(target, tmp_path / "media", tmp_path / "state")
    assert (result.objects_sent, result.bytes_sent) == (1, 777)  # only the missing chunk
    assert sorted(o.size for o in objects(target)) == [777, CHUNK_SIZE, CHUNK_SIZE]
    restore_media(target, result.listing, tmp_path / "back")
    assert (tmp_path / "back/Video/long.mov").read_bytes() == video


def test_unchanged_files_are_not_opened(tmp_path, target, monkeypatch):
    make_tree(tmp_path / "media", stickers(5, 30))
    back_up(target, tmp_path / "media", tmp_path / "state")
    opened = []
    real = backup_module.open_untouched
    monkeypatch.setattr(backup_module, "open_untouched", lambda path: opened.append(path) or real(path))
    again = back_up(target, tmp_path / "media", tmp_path / "state")
    assert (again.files_read, opened, again.bytes_sent) == (0, [], 0)
    changed = tmp_path / "media/Stickers/03/s3.webp"
    changed.write_bytes(b"a new sticker")
    third = back_up(target, tmp_path / "media", tmp_path / "state")
    assert (third.files_read, opened) == (1, [changed])
    assert third.bytes_sent == len(b"a new sticker")
    state = next((tmp_path / "state/media").iterdir())
    assert state.stat().st_mode & 0o777 == 0o600


def test_a_folder_of_empty_files(tmp_path, target):
    make_tree(tmp_path / "media", {"a/empty": b"", "b/also-empty": b""})
    result = back_up(target, tmp_path / "media", tmp_path / "state")
    restore_media(target, result.listing, tmp_path / "back")
    assert tree(tmp_path / "back") == {"a/empty": b"", "b/also-empty": b""}


def test_a_deleted_file_stays_restorable_from_the_older_listing(tmp_path, target):
    files = stickers(6, 10)
    make_tree(tmp_path / "media", files)
    before = back_up(target, tmp_path / "media", tmp_path / "state")
    gone = "Stickers/04/s4.webp"
    (tmp_path / "media" / gone).unlink()
    after = back_up(target, tmp_path / "media", tmp_path / "state")
    assert gone not in {f.path for f in read_listing(target, after.listing)}
    restore_media(target, before.listing, tmp_path / "old")
    assert tree(tmp_path / "old") == files


def test_restore_equals_the_original_tree(tmp_path, target):
    rnd = random.Random(7)
    files = {**stickers(8, 120), "Video/a.mp4": rnd.randbytes(CHUNK_SIZE * 2),
             "Photos/b.heic": rnd.randbytes(SMALL_FILE + 1), "Photos/empty.jpg": b"",
             "dup/copy.mp4": b"", "Voice/x.opus": rnd.randbytes(SMALL_FILE - 1)}
    make_tree(tmp_path / "media", files)
    os.symlink("/etc/passwd", tmp_path / "media/leak")  # never followed, never stored
    result = back_up(target, tmp_path / "media", tmp_path / "state")
    assert result.files == len(files)
    (tmp_path / "back").mkdir()
    assert restore_media(target, result.listing, tmp_path / "back") == len(files)
    assert tree(tmp_path / "back") == files
    original = (tmp_path / "media/Voice/x.opus").stat().st_mtime_ns
    assert (tmp_path / "back/Voice/x.opus").stat().st_mtime_ns == original


def test_a_damaged_object_is_refused_and_nothing_is_written(tmp_path, target):
    make_tree(tmp_path / "media", stickers(9, 20))
    result = back_up(target, tmp_path / "media", tmp_path / "state")
    pack = Path(target.location) / objects(target)[0].name
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 1
    pack.write_bytes(bytes(data))
    with pytest.raises(CorruptObject) as e:
        restore_media(target, result.listing, tmp_path / "back")
    assert "\n" not in str(e.value) and e.value.hint
    assert not (tmp_path / "back").exists() and list(tmp_path.glob(".back.*")) == []


@pytest.mark.parametrize("path", ["../outside", "/etc/x", "a/../../b", "./a", ""])
def test_a_forged_listing_is_refused(tmp_path, target, path):
    listing = write_meta(target, LISTINGS, {"format": 1, "files": [[path, "0" * 64, 1, 0]]})
    with pytest.raises(SyncdError) as e:
        restore_media(target, listing, tmp_path / "back")
    assert isinstance(e.value, CorruptObject) and "\n" not in str(e.value)
    assert not (tmp_path / "back").exists() and not (tmp_path / "outside").exists()


def test_a_forged_index_pointing_at_other_bytes_is_refused(tmp_path, target):
    make_tree(tmp_path / "media", {"a.jpg": b"the real photo", "b.jpg": b"something else"})
    result = back_up(target, tmp_path / "media", tmp_path / "state")
    entries = {f.path: f.hash for f in read_listing(target, result.listing)}
    from syncd.media.store import load_index
    index = load_index(target)
    # A forged index that says a.jpg's hash lies where b.jpg's bytes are.
    for info in target.list("media/index/"):
        target.delete(info.name)
    write_meta(target, "media/index/", {"format": 1, "files": {entries["a.jpg"]: index[entries["b.jpg"]],
                                                               entries["b.jpg"]: index[entries["b.jpg"]]}})
    with pytest.raises(CorruptObject, match="a.jpg"):
        restore_media(target, result.listing, tmp_path / "back")
