"""An iOS backup's media streams from Manifest.db to the store in path order, none of it held: the
kind yields its files one by one, and the pass asks for the next only once it is done with one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SHARED_FIXTURES
from ios_backup_builder import WHATSAPP, BackupBuilder, phone_files
from syncd.media.backup import ListedMedia
from syncd.plugins import open_source, plugin_manager
from syncd.source import SourceMedia, SourceOptions
from test_ios_backup_cli import nas, ok

MEDIA = "Message/Media/4915@s.whatsapp.net"


@pytest.fixture
def backup(tmp_path) -> tuple[Path, dict[str, bytes]]:
    if not SHARED_FIXTURES.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
    (tmp_path / "apps").mkdir()
    phone = phone_files(tmp_path / "apps", SHARED_FIXTURES)
    builder = BackupBuilder(tmp_path / "backup")
    builder.put(WHATSAPP, phone[WHATSAPP])
    rnd = random.Random(14)
    files = {f"{MEDIA}/{i % 7}/{rnd.randrange(10**6):06d}-{i}.jpg": rnd.randbytes(rnd.randrange(1, 300))
             for i in range(600)}
    for path in rnd.sample(sorted(files), len(files)):  # Manifest.db's rows in no order
        builder.put((WHATSAPP[0], path), files[path])
    builder.write()
    return builder.folder, files


def test_the_kind_yields_its_media_in_path_order_without_a_list(tmp_path, backup):
    folder, files = backup
    source = open_source(plugin_manager(), folder, SourceOptions(), lambda kind: tmp_path / "work")
    try:
        [db] = [d for d in source.databases() if d.name.endswith("whatsapp")]
        listed = source.media(db)
        assert isinstance(listed, Iterator) and not isinstance(listed, (list, tuple))
        paths = [f.path for f in listed]
    finally:
        source.close()
    assert paths == sorted(files)


def test_the_pass_takes_the_next_file_only_when_done_with_one():
    taken = []

    def listing() -> Iterator[SourceMedia]:
        for i in range(100):
            taken.append(i)
            yield SourceMedia(f"Media/{i:03d}.jpg", 1, 0, i, lambda: None)

    files = ListedMedia("k", listing()).files()
    for i, (seen, _) in enumerate(files):
        assert len(taken) == i + 1  # never read ahead
    assert seen.path == "Media/099.jpg"


def test_a_listing_out_of_order_leaves_out_what_is_out_of_place():
    def listing():
        for path in ("a/1.jpg", "a/3.jpg", "a/2.jpg", "a/3.jpg", "b/1.jpg"):
            yield SourceMedia(path, 1, 0, 1, lambda: None)

    assert [s.path for s, _ in ListedMedia("k", listing()).files()] == ["a/1.jpg", "a/3.jpg", "b/1.jpg"]
    unsorted = [SourceMedia(p, 1, 0, 1, lambda: None) for p in ("b/1.jpg", "a/1.jpg")]
    assert [s.path for s, _ in ListedMedia("k", unsorted).files()] == ["a/1.jpg", "b/1.jpg"]  # a list is sorted


def test_every_streamed_file_is_archived_and_restored(tmp_path, backup):
    folder, files = backup
    ok("sync", folder, "--to", nas(tmp_path), "--state", tmp_path / "state")
    out = tmp_path / "restored"
    ok("restore", "--from", nas(tmp_path), "--source", "anns-iphone.whatsapp", tmp_path / "w.sqlite", "--media", out)
    restored = {p.relative_to(out / "ios-backup").as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert restored == files
