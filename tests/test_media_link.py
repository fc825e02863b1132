"""A plain folder target on the state dir's filesystem gets each media object as a hard link of the
local store's (no second copy), a copy where a link can't be made, and an encrypted target never a
link; whatever repairs one side writes a new file, never into the shared one."""

from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from test_media_sync import SECRET_NAME, chat, sync, tree  # noqa: F401 (chat is a fixture)

from syncd.archive import crypto
from syncd.delivery.media import copy_store
from syncd.delivery.retry import RetryingBackend
from syncd.media.area import PlainArea
from syncd.media.backup import back_up
from syncd.media.restore import restore_media
from syncd.media.store import CHUNK_SIZE
from syncd.plugins import open_backend, plugin_manager
from test_bad_input import cli

LOCAL_MEDIA = "sources/chat.db/archive/media"


def files_below(folder: Path) -> dict[str, os.stat_result]:
    return {p.relative_to(folder).as_posix(): p.stat() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_target_on_the_same_filesystem_links_each_object(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target)
    local, there = files_below(state / LOCAL_MEDIA), files_below(target / "media")
    objects = [name for name in local if name.startswith("objects/")]
    assert objects and set(local) == set(there)
    for name in objects:
        assert (there[name].st_dev, there[name].st_ino) == (local[name].st_dev, local[name].st_ino), name
        assert there[name].st_nlink == 2 and oct(there[name].st_mode & 0o777) == "0o600"
    assert not [p for p in (target / "media").rglob(".*")]  # no temporary link left behind
    assert cli("verify", "--from", target).exit_code == 0
    out = tmp_path / "back"
    out.mkdir()
    assert cli("restore", out / "chat.db", "--from", target, "--media", out / "m").exit_code == 0
    assert tree(out / "m/Attachments") == files


def test_a_lost_or_replaced_object_is_linked_again_and_the_local_one_is_untouched(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target)
    local_before = tree(state / LOCAL_MEDIA)
    lost, replaced = sorted(p for p in (target / "media/objects").rglob("*") if p.is_file())[-2:]
    lost.unlink()
    replaced_local = state / LOCAL_MEDIA / replaced.relative_to(target / "media")
    # Damaged by whoever else writes to the share: a new, shorter file renamed over the object.
    (replaced.parent / "forged").write_bytes(b"not the object")
    os.replace(replaced.parent / "forged", replaced)
    assert cli("verify", "--from", target).exit_code == 1
    again = sync(db, media, state, target)
    assert again["targets"][0]["bytes"] > 0
    assert tree(state / LOCAL_MEDIA) == local_before
    assert replaced.stat().st_ino == replaced_local.stat().st_ino
    assert tree(target / "media") == local_before
    assert cli("verify", "--from", target).exit_code == 0


@pytest.mark.parametrize("refusal", [errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP])
def test_where_a_link_is_refused_the_object_is_copied(tmp_path, monkeypatch, refusal):
    pm = plugin_manager()
    rnd = random.Random(refusal)
    originals = {"Stickers/s.webp": rnd.randbytes(20_000), "Video/v.mov": rnd.randbytes(CHUNK_SIZE + 17)}
    for rel, data in originals.items():
        (tmp_path / "media" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "media" / rel).write_bytes(data)
    (tmp_path / "local").mkdir(), (tmp_path / "target").mkdir()
    local = open_backend(pm, str(tmp_path / "local"))
    done = back_up(local, tmp_path / "media", tmp_path / "state")
    real_link, refused = os.link, []

    def link(src, dst, *args, **kwargs):
        refused.append(dst)
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "link", link)
    target = RetryingBackend(open_backend(pm, str(tmp_path / "target")))
    sent = copy_store(PlainArea(local), PlainArea(target))
    monkeypatch.setattr(os, "link", real_link)
    assert refused and sent == sum(o.size for o in local.list("media/"))
    local_files, target_files = files_below(tmp_path / "local"), files_below(tmp_path / "target")
    assert set(local_files) == set(target_files)
    assert all(target_files[n].st_ino != local_files[n].st_ino and target_files[n].st_nlink == 1 for n in target_files)
    assert tree(tmp_path / "target") == tree(tmp_path / "local")
    assert not [p for p in (tmp_path / "target").rglob(".*") if p.is_file()]
    restore_media(target, done.listing, tmp_path / "back")
    assert tree(tmp_path / "back") == originals


def test_an_error_other_than_a_refused_link_fails_the_delivery(tmp_path, monkeypatch):
    pm = plugin_manager()
    (tmp_path / "media").mkdir(), (tmp_path / "local").mkdir(), (tmp_path / "target").mkdir()
    (tmp_path / "media/a.jpg").write_bytes(b"a photo")
    local = open_backend(pm, str(tmp_path / "local"))
    back_up(local, tmp_path / "media", tmp_path / "state")

    def link(src, dst, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "link", link)
    from syncd.errors import PermanentError

    with pytest.raises(PermanentError, match="target folder"):
        copy_store(PlainArea(local), PlainArea(open_backend(pm, str(tmp_path / "target"))))


def shm_is_another_filesystem(path: Path) -> bool:
    return Path("/dev/shm").is_dir() and os.stat("/dev/shm").st_dev != os.stat(path).st_dev


def test_a_target_on_another_filesystem_gets_a_copy(tmp_path, chat):
    if not shm_is_another_filesystem(tmp_path):
        pytest.skip("needs /dev/shm on a filesystem other than the temporary folder's")
    db, media, files = chat
    state = tmp_path / "state"
    target = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="syncd-link-"))
    try:
        sync(db, media, state, target)
        local, there = files_below(state / LOCAL_MEDIA), files_below(target / "media")
        assert set(local) == set(there)
        assert all(s.st_nlink == 1 and s.st_dev != local[n].st_dev for n, s in there.items())
        assert tree(target / "media") == tree(state / LOCAL_MEDIA)
        assert cli("verify", "--from", target).exit_code == 0
    finally:
        shutil.rmtree(target)


def test_an_encrypted_target_never_gets_a_link(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    recipient = crypto.keygen(tmp_path / "owner.txt")
    sync(db, media, state, target, extra=("--encrypt-to", recipient))
    local = {(s.st_dev, s.st_ino) for s in files_below(state / LOCAL_MEDIA).values()}
    there = files_below(target)
    assert there and all(s.st_nlink == 1 and (s.st_dev, s.st_ino) not in local for s in there.values())
    assert not any(SECRET_NAME in name for name in there)
