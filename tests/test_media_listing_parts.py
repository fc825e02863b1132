"""A large tree's listing is written in parts (PART_FILES files each) under a head, so no object
nears what a reader takes from a target; plain and encrypted targets restore and verify it, and a
forged head or part is refused. PART_FILES is made small here instead of writing 50,000 files."""

from __future__ import annotations

import json
import zlib

import pytest
from test_media_sync import chat, sync, tree  # noqa: F401 (chat is a fixture)

from conftest import cli
from syncd.archive import crypto
from syncd.errors import CorruptObject
from syncd.media import listing as listing_module
from syncd.media.codec import get_meta, put_encoded
from syncd.media.listing import MediaFile, read_listing_whole, write_listing
from syncd.media.area import PlainArea
from syncd.plugins import open_backend, plugin_manager

PART = 7


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    monkeypatch.setattr(listing_module, "PART_FILES", PART)


@pytest.fixture
def area(tmp_path):
    (tmp_path / "store").mkdir()
    return PlainArea(open_backend(plugin_manager(), str(tmp_path / "store")))


def files(n: int) -> list[MediaFile]:
    return [MediaFile(f"d{i % 3}/f{i:03d}.jpg", f"{i:064x}", i, 1_700_000_000_000_000_000 + i) for i in range(n)]


def test_a_listing_past_one_part_is_a_head_naming_its_parts_in_order(area):
    name = write_listing(area, iter(sorted(files(20), key=lambda f: f.path)), ["Img/th_missing"])
    head = get_meta(area, "listings", name)
    assert head["format"] == 2 and len(head["parts"]) == 3 and head["absent"] == ["Img/th_missing"]
    parts = [get_meta(area, "listings", part) for part in head["parts"]]
    assert [len(p["files"]) for p in parts] == [7, 7, 6] and all("absent" not in p for p in parts)
    assert read_listing_whole(area, name) == (sorted(files(20), key=lambda f: f.path), ["Img/th_missing"])


def test_a_listing_of_one_part_is_one_object_as_before(area):
    name = write_listing(area, files(PART), ["x/y.jpg"])
    value = get_meta(area, "listings", name)
    assert value["format"] == 1 and len(value["files"]) == PART and value["absent"] == ["x/y.jpg"]
    assert len(area.names("listings")) == 1


def put_head(area, value) -> str:
    return put_encoded(area, "listings", zlib.compress(json.dumps(value).encode()))


@pytest.mark.parametrize("forge", ["missing part", "part twice", "head as part", "no parts", "bad name"])
def test_a_forged_head_is_refused(area, forge):
    head = get_meta(area, "listings", write_listing(area, files(20)))
    parts = head["parts"]
    forged = {
        "missing part": parts + ["ab" * 32],
        "part twice": parts + parts[:1],  # its paths listed twice
        "head as part": [put_head(area, head)],
        "no parts": [],
        "bad name": ["../../etc/passwd"],
    }[forge]
    with pytest.raises(CorruptObject):
        read_listing_whole(area, put_head(area, {"format": 2, "parts": forged}))


def test_a_tree_in_parts_restores_and_verifies_from_plain_and_encrypted_targets(tmp_path, chat):  # noqa: F811
    db, media, original = chat
    identity = tmp_path / "owner.txt"
    recipient = crypto.keygen(identity)
    state, plain, sealed = tmp_path / "state", tmp_path / "nas", tmp_path / "sealed"
    sync(db, media, state, plain)
    sync(db, media, state / "e", sealed, extra=("--encrypt-to", recipient))
    for target, extra in ((plain, ()), (sealed, ("--identity", identity))):
        out = tmp_path / f"back-{target.name}"
        out.mkdir()
        cli("restore", out / "chat.db", "--from", target, "--media", out / "m", *extra)
        assert tree(out / "m/Attachments") == tree(media)
        cli("verify", "--from", target, *extra)
    listings = list((plain / "media/listings").rglob("*"))
    assert len([p for p in listings if p.is_file()]) > len(original) // PART  # parts and a head


def test_restore_streams_the_listing_and_the_index(tmp_path, chat, monkeypatch):  # noqa: F811
    """A restore lays its files out a part and an index object at a time: it never asks for the
    whole listing or the whole index, which for a large tree would not fit in memory."""
    from syncd.media import restore as restore_module
    from syncd.media import store as store_module

    db, media, _ = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target)

    def whole(*args, **kwargs):
        raise AssertionError("read whole")
    monkeypatch.setattr(listing_module, "read_listing_whole", whole)
    monkeypatch.setattr(store_module, "load_index", whole)
    monkeypatch.setattr(restore_module, "load_index", whole)
    out = tmp_path / "back"
    out.mkdir()
    cli("restore", out / "chat.db", "--from", target, "--media", out / "m")
    assert tree(out / "m/Attachments") == tree(media)
    assert sorted(p.name for p in out.iterdir()) == ["chat.db", "m"]  # the plan's scratch is gone


def test_a_path_in_two_parts_is_refused_by_restore(area, tmp_path):
    from syncd.media.restore import restore_media

    head = get_meta(area, "listings", write_listing(area, files(20)))
    forged = put_head(area, {"format": 2, "parts": head["parts"] + head["parts"][:1]})
    with pytest.raises(CorruptObject):
        restore_media(area, forged, tmp_path / "back")
    assert not (tmp_path / "back").exists()


@pytest.mark.parametrize("count", [0, 1, 4, 5, 8, 9, 16])
def test_a_listing_decodes_whatever_its_count_against_the_batch_and_part_sizes(area, monkeypatch, count):
    """Rows are encoded LISTING_BATCH at a time: a part that ends on a whole batch (4 and 8 files
    here, 50,000 in use) must close its JSON as any other does."""
    monkeypatch.setattr(listing_module, "LISTING_BATCH", 2)
    monkeypatch.setattr(listing_module, "PART_FILES", 4)
    listed = sorted(files(count), key=lambda f: f.path)
    assert read_listing_whole(area, write_listing(area, iter(listed), ["a/b.jpg"])) == (listed, ["a/b.jpg"])
