"""The local store's objects are written through a batch: direct writes, fsynced together, and named
only once durable, all before the index that names them; a pass that fails keeps what it wrote whole
and names nothing it didn't make durable."""

from __future__ import annotations

import errno
import os
import random
import tempfile
from pathlib import Path

import pytest

from syncd import fsutil
from syncd.errors import SyncdError
from syncd.media.backup import back_up
from syncd.media.restore import restore_media
from syncd.media.store import CHUNK_SIZE, INDEX, OBJECTS
from syncd.plugins import open_backend, plugin_manager
from test_media_store import make_tree, tree


@pytest.fixture
def target(tmp_path):
    (tmp_path / "target").mkdir()
    return open_backend(plugin_manager(), str(tmp_path / "target"))


def media(tmp_path: Path) -> dict[str, bytes]:
    rnd = random.Random(9)
    files = {f"Stickers/s{i}.webp": rnd.randbytes(rnd.randrange(1, 30_000)) for i in range(30)}
    files["Video/v.mov"] = rnd.randbytes(2 * CHUNK_SIZE + 4097)
    make_tree(tmp_path / "media", files)
    return files


def test_every_object_is_fsynced_and_named_before_the_index(tmp_path, target, monkeypatch):
    files = media(tmp_path)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(src)))
        events.append(("named", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    done = back_up(target, tmp_path / "media", tmp_path / "state")
    root = str(tmp_path / "target")
    named = [path for what, path in events if what == "named" and path.startswith(root)]
    objects = [n for n in named if f"/{OBJECTS}" in n]
    first_index = min(i for i, (what, path) in enumerate(events) if what == "named" and f"/{INDEX}" in path)
    assert len(objects) == len({o.name for o in target.list(OBJECTS)}) >= 4
    for obj in objects:
        at = events.index(("named", obj))
        temp = events[at - 1][1]
        assert ("fsync", temp) in events[:at - 1], obj  # its bytes durable before its name
        assert at < first_index
    folders = {str(Path(o).parent) for o in objects}
    synced_dirs = {path for what, path in events[:first_index] if what == "fsync"}
    assert folders <= synced_dirs  # and each name durable before the index
    restore_media(target, done.listing, tmp_path / "back")
    assert tree(tmp_path / "back") == files


def test_a_pass_whose_commit_fails_names_nothing_and_the_next_one_completes(tmp_path, target, monkeypatch):
    files = media(tmp_path)
    real_fsync_file = fsutil.fsync_file

    def failing(path):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(fsutil, "fsync_file", failing)
    with pytest.raises(SyncdError, match="Input/output error"):
        back_up(target, tmp_path / "media", tmp_path / "state")
    assert target.list(OBJECTS) == [] and target.list(INDEX) == []
    assert not [p for p in (tmp_path / "target").rglob("*") if p.is_file()]  # no temporary file left
    monkeypatch.setattr(fsutil, "fsync_file", real_fsync_file)
    done = back_up(target, tmp_path / "media", tmp_path / "state")
    restore_media(target, done.listing, tmp_path / "back")
    assert tree(tmp_path / "back") == files


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, fsutil.DIRECT_PIECE - 1, fsutil.DIRECT_PIECE + 4097])
def test_a_direct_write_holds_exactly_the_bytes(tmp_path, size):
    data = random.Random(size).randbytes(size)
    batch = fsutil.SyncedTogether()
    batch.write(tmp_path / "object", data)
    assert not (tmp_path / "object").exists()  # not named before the commit
    assert batch.commit() == [tmp_path / "object"]
    assert (tmp_path / "object").read_bytes() == data
    assert oct((tmp_path / "object").stat().st_mode & 0o777) == "0o600"


def test_a_filesystem_without_direct_writes_gets_ordinary_ones():
    if not Path("/dev/shm").is_dir():
        pytest.skip("needs /dev/shm (tmpfs, which refuses O_DIRECT)")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        data = random.Random(5).randbytes(100_000)
        batch = fsutil.SyncedTogether()
        batch.write(Path(folder) / "object", data)
        batch.commit()
        assert (Path(folder) / "object").read_bytes() == data
