"""Media with the database, through the real CLI: local first, then every target (plain and
encrypted), each version restorable with the media tree it had, `verify` covering media, and an
encrypted target showing no file name, plain hash or plain bytes."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import apsw
import pytest
from test_bad_input import cli, error_lines
from test_media_store import make_tree as write, tree

from syncd.archive import crypto
from syncd.media.store import CHUNK_SIZE

SECRET_NAME = "IMG_holiday_with_alice.jpg"


def make_db(path: Path, rows: int) -> None:
    db = apsw.Connection(str(path))
    db.execute("CREATE TABLE IF NOT EXISTS message(id INTEGER PRIMARY KEY, text TEXT)")
    db.executemany("INSERT OR IGNORE INTO message VALUES (?, ?)", [(i, f"hello {i}") for i in range(1, rows + 1)])
    db.close()


@pytest.fixture
def chat(tmp_path):
    """A chat database and its media folder, as an app keeps them."""
    rnd = random.Random(14)
    db, media = tmp_path / "phone/chat.db", tmp_path / "phone/Attachments"
    db.parent.mkdir()
    make_db(db, 10)
    files = {f"{i:02x}/sticker{i}.webp": rnd.randbytes(rnd.randrange(10, 30_000)) for i in range(40)}
    files["ab/" + SECRET_NAME] = b"\xff\xd8\xff\xe0 JFIF the holiday photo" + rnd.randbytes(5000)
    files["Video/clip.mov"] = rnd.randbytes(CHUNK_SIZE + 4321)
    files["Forwarded/" + SECRET_NAME] = files["ab/" + SECRET_NAME]  # the same bytes twice
    write(media, files)
    return db, media, files


def sync(db: Path, media: Path, state: Path, *targets: str, extra: tuple = ()):
    for t in targets:
        Path(t).mkdir(exist_ok=True)
    args = ["sync", db, "--media", media, "--state", state, "--json", *extra]
    for t in targets:
        args += ["--to", t]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_media_goes_local_first_then_to_the_target_and_restores_at_each_version(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    first = sync(db, media, state, target)
    assert first["media"]["files"] == len(files) and first["media"]["files_read"] == len(files)
    # Local first: the state dir's archive holds the store too, whatever the target did.
    local_objects = list((state / "sources/chat.db/archive/media/objects").rglob("*"))
    assert local_objects
    # Version 2 of the database; a file deleted and one added in the media folder.
    make_db(db, 20)
    os.unlink(media / "00/sticker0.webp")
    write(media, {"new/voice.opus": b"a new voice note"})
    second = sync(db, media, state, target)
    assert second["version"] == 2 and second["media"]["files_read"] == 1
    assert second["targets"][0]["bytes"] < 100_000  # the new note and metadata, not the tree again

    for version, expected in ((1, files), (2, tree(media))):
        out = tmp_path / f"restored-{version}"
        out.mkdir()
        result = cli("restore", out / "chat.db", "--from", target, "--version", version, "--media", out / "media")
        assert result.exit_code == 0, result.output
        assert tree(out / "media/Attachments") == expected
    assert "00/sticker0.webp" in tree(tmp_path / "restored-1/media/Attachments")


def test_a_pass_with_nothing_new_reads_no_file_and_sends_nothing(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target)
    again = sync(db, media, state, target)
    assert again["changed"] is False
    assert (again["media"]["files_read"], again["media"]["bytes_sent"], again["targets"][0]["bytes"]) == (0, 0, 0)


def test_media_alone_changing_is_delivered_and_recorded_at_the_head(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target)
    write(media, {"later/photo.jpg": b"arrived after the database was archived"})
    again = sync(db, media, state, target)
    assert again["changed"] is False and again["targets"][0]["bytes"] > 0
    out = tmp_path / "back"
    out.mkdir()
    assert cli("restore", out / "chat.db", "--from", target, "--media", out / "m").exit_code == 0
    assert (out / "m/Attachments/later/photo.jpg").read_bytes() == b"arrived after the database was archived"


def test_a_target_that_lost_media_objects_gets_them_again(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target)
    lost = sorted((target / "media/objects").rglob("*"))[-1]
    assert lost.is_file()
    lost.unlink()
    assert cli("verify", "--from", target).exit_code == 1
    again = sync(db, media, state, target)
    assert again["targets"][0]["bytes"] > 0 and "lost media" in again["targets"][0]["note"]
    result = cli("verify", "--from", target)
    assert result.exit_code == 0, result.output


def test_verify_reports_a_damaged_media_object(tmp_path, chat):
    db, media, files = chat
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target)
    assert cli("verify", "--from", target).exit_code == 0
    pack = max((p for p in (target / "media/objects").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[100] ^= 1
    pack.write_bytes(bytes(data))
    result = cli("verify", "--from", target)
    assert result.exit_code == 1 and "media" in result.output


def test_two_sources_share_the_store_on_a_target(tmp_path, chat):
    db, media, files = chat
    other = tmp_path / "phone/other.db"
    make_db(other, 3)
    target = tmp_path / "nas"
    sync(db, media, tmp_path / "state", target)
    held = sum(p.stat().st_size for p in (target / "media/objects").rglob("*") if p.is_file())
    sync(other, media, tmp_path / "state", target)
    assert sum(p.stat().st_size for p in (target / "media/objects").rglob("*") if p.is_file()) == held


def test_encrypted_target_holds_nothing_readable_and_restores(tmp_path, chat):
    db, media, files = chat
    identity = tmp_path / "owner.txt"
    recipient = crypto.keygen(identity)
    state, target = tmp_path / "state", tmp_path / "nas"
    sync(db, media, state, target, extra=("--encrypt-to", recipient))
    write(media, {"new/note.opus": b"second pass"})
    sync(db, media, state, target, extra=("--encrypt-to", recipient))
    plain_hashes = {hashlib.sha256(data).hexdigest() for data in files.values()}
    plain_hashes |= {p.name for p in (state / "sources/chat.db/archive/media").rglob("*") if p.is_file()}
    for path in target.rglob("*"):
        assert SECRET_NAME not in str(path) and "Attachments" not in str(path)
        assert not any(h in str(path) for h in plain_hashes), path
        if path.is_file():
            data = path.read_bytes()
            assert b"JFIF the holiday photo" not in data and SECRET_NAME.encode() not in data
    assert not (target / "media").exists()
    out = tmp_path / "back"
    out.mkdir()
    result = cli("restore", out / "chat.db", "--from", target, "--identity", identity, "--media", out / "m")
    assert result.exit_code == 0, result.output
    assert tree(out / "m/Attachments") == tree(media)
    result = cli("verify", "--from", target, "--identity", identity)
    assert result.exit_code == 0, result.output
    assert cli("verify", "--from", target).exit_code == 0  # from outside: nothing out of place


def test_restore_media_refuses_a_version_without_media_and_writes_nothing(tmp_path, chat):
    db, media, files = chat
    target = tmp_path / "nas"
    target.mkdir()
    assert cli("sync", db, "--to", target, "--state", tmp_path / "state").exit_code == 0
    out = tmp_path / "back"
    out.mkdir()
    result = cli("restore", out / "chat.db", "--from", target, "--media", out / "m")
    assert result.exit_code != 0
    error_lines(result.stderr, hint=True)
    assert list(out.iterdir()) == []


def test_a_missing_media_folder_is_refused(tmp_path, chat):
    db, media, files = chat
    result = cli("sync", db, "--to", tmp_path / "nas", "--state", tmp_path / "state", "--media", tmp_path / "nope")
    assert result.exit_code == 2
    error_lines(result.stderr, hint=True)
    assert not (tmp_path / "nas").exists() and not (tmp_path / "state").exists()
