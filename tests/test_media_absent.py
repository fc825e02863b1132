"""Media a message names but no folder holds is listed as absent, and filled in once it appears:
through the real CLI on an iMessage-like database whose attachments are only partly on disk."""

from __future__ import annotations

import json
import random
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.media.area import PlainArea
from syncd.media.listing import read_listing_whole
from syncd.media.match import Absent, MediaIndex
from syncd.plugins import open_backend, plugin_manager
from syncd.samples import create_imessage

PREFIX = "~/Library/Messages/Attachments/"


def sync(tmp_path: Path, db: Path, media: Path) -> dict:
    result = CliRunner().invoke(main, ["sync", str(db), "--media", str(media), "--to", str(tmp_path / "nas"),
                                       "--state", str(tmp_path / "state"), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["media"]


def listed(tmp_path: Path, listing: str) -> tuple[set[str], set[str]]:
    files, absent = read_listing_whole(PlainArea(open_backend(plugin_manager(), str(tmp_path / "nas"))), listing)
    return {f.path for f in files}, set(absent)


@pytest.fixture
def chat(tmp_path) -> tuple[Path, list[str]]:
    db = tmp_path / "chat.db"
    create_imessage(db, messages=300, seed=3)
    con = apsw.Connection(str(db))
    references = sorted({r for (r,) in con.execute("SELECT filename FROM attachment") if r})
    con.close()
    (tmp_path / "nas").mkdir()
    assert len(references) >= 6
    return db, references


def put(folder: Path, reference: str) -> None:
    path = folder / reference.removeprefix(PREFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(reference).randbytes(500))


def test_missing_attachments_are_listed_absent_and_filled_in_when_they_appear(tmp_path, chat):
    db, references = chat
    media = tmp_path / "Attachments"
    media.mkdir()
    there, missing = references[::2], references[1::2]
    for reference in there:
        put(media, reference)
    first = sync(tmp_path, db, media)
    paths, absent = listed(tmp_path, first["listing"])
    assert absent == set(missing) and first["absent"] == len(missing)
    assert paths == {"Attachments/" + r.removeprefix(PREFIX) for r in there}

    assert sync(tmp_path, db, media)["listing"] == first["listing"]  # nothing new: the same listing

    put(media, missing[0])  # downloaded from iCloud at last
    later = sync(tmp_path, db, media)
    paths, absent = listed(tmp_path, later["listing"])
    assert absent == set(missing[1:]) and later["absent"] == len(missing) - 1
    assert "Attachments/" + missing[0].removeprefix(PREFIX) in paths
    assert listed(tmp_path, first["listing"])[1] == set(missing)  # the older listing is as it was


def test_a_reference_names_the_listed_file_whose_path_ends_like_it():
    listed = ["Attachments/0a/10/GUID-1/IMG_1.HEIC", "ios-backup/Message/Media/4915@s.whatsapp.net/a/b/clip.mp4",
              "Media/WhatsApp Images/IMG-20240101-WA0001.jpg", "Img/th_abc"]
    index = MediaIndex(listed)
    assert index.find("~/Library/Messages/Attachments/0a/10/GUID-1/IMG_1.HEIC") == "Attachments/0a/10/GUID-1/IMG_1.HEIC"
    assert index.find("/var/mobile/Library/SMS/Attachments/0a/10/GUID-1/IMG_1.HEIC") == \
        "Attachments/0a/10/GUID-1/IMG_1.HEIC"
    assert index.find("Media/4915@s.whatsapp.net/a/b/clip.mp4") == \
        "ios-backup/Message/Media/4915@s.whatsapp.net/a/b/clip.mp4"
    assert index.find("Media/WhatsApp Images/IMG-20240101-WA0001.jpg") == "Media/WhatsApp Images/IMG-20240101-WA0001.jpg"
    assert index.find("THUMBNAIL_DIRPATH://th_abc") == "Img/th_abc"
    assert index.find("~/Library/Messages/Attachments/0a/10/GUID-2/IMG_1.HEIC") is None  # same name, other folder
    # A path no listed file ends like is absent, and so is a bare name no listed file answers
    # (issue 14: WeChat's bare imgPath); the rule is Absent's, which a pass applies as the listing streams by.
    absent = Absent(["THUMBNAIL_DIRPATH://th_nothere", "voice_hash", "a/b/c.jpg", "Img/th_abc"])
    for path in listed:
        absent.seen(path)
    assert absent.references() == ["THUMBNAIL_DIRPATH://th_nothere", "a/b/c.jpg", "voice_hash"]
