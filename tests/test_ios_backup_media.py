"""An iOS backup's media, found through Manifest.db and archived with its app's database: plain and
encrypted backups through the real CLI, restored byte for byte, unchanged files neither read nor
decrypted again, decrypted bytes never left in the state dir, hostile paths never listed."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import pytest

from conftest import SHARED_FIXTURES
from ios_backup_builder import SMS, WHATSAPP, BackupBuilder, phone_files, wechat_path
from syncd_ios_backup import backup as backup_module
from test_ios_backup_cli import cli, nas, ok, secret_file

PASSWORD = "a backup password"
WECHAT_DOCS = f"Documents/{hashlib.md5(b'wxid_ann').hexdigest()}"
rnd = random.Random(14)
MEDIA = {
    "anns-iphone.imessage": {("MediaDomain", "Library/SMS/Attachments/0a/10/GUID-1/IMG_0001.HEIC"): rnd.randbytes(70_000),
                             ("MediaDomain", "Library/SMS/Attachments/0b/11/GUID-2/Audio.caf"): rnd.randbytes(1_300_000),
                             ("MediaDomain", "Library/SMS/Attachments/0c/12/GUID-3/empty.txt"): b""},
    "anns-iphone.whatsapp": {(WHATSAPP[0], "Message/Media/4915@s.whatsapp.net/a/b/clip.mp4"): rnd.randbytes(9_000_000),
                             (WHATSAPP[0], "Message/Media/4915@s.whatsapp.net/c/d/photo.jpg"): rnd.randbytes(5_000)},
    "anns-iphone.wechat.MM": {(wechat_path("wxid_ann", "MM")[0], f"{WECHAT_DOCS}/Img/abc/1.pic"): rnd.randbytes(3_000),
                              (wechat_path("wxid_ann", "MM")[0], f"{WECHAT_DOCS}/Audio/abc/1.aud"): rnd.randbytes(900),
                              (wechat_path("wxid_ann", "MM")[0], f"{WECHAT_DOCS}/Video/abc/1.mp4"): rnd.randbytes(40_000)},
}
NOT_MEDIA = {("MediaDomain", "Library/SMS/Drafts/x.plist"): b"a draft",  # beside, not under, the attachments
             (WHATSAPP[0], "Message/Media/../../../escape.jpg"): b"a path leaving the folder"}


@pytest.fixture(scope="module")
def phone(tmp_path_factory) -> dict:
    if not SHARED_FIXTURES.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
    files = phone_files(tmp_path_factory.mktemp("apps"), SHARED_FIXTURES)
    return {place: files[place] for place in (SMS, WHATSAPP, (WHATSAPP[0], WHATSAPP[1] + "-wal"),
                                              wechat_path("wxid_ann", "MM"), wechat_path("wxid_ann", "message_1"))}


def build(folder: Path, phone: dict, password: str | None) -> BackupBuilder:
    builder = BackupBuilder(folder, password=password)
    for place, data in {**phone, **NOT_MEDIA, **{p: d for files in MEDIA.values() for p, d in files.items()}}.items():
        builder.put(place, data)
    builder.write()
    return builder


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def sync_args(builder: BackupBuilder, tmp_path: Path, password: str | None) -> list:
    args = ["sync", builder.folder, "--to", nas(tmp_path), "--state", tmp_path / "state", "--json"]
    return args + (["--password-file", secret_file(tmp_path, password)] if password else [])


@pytest.mark.parametrize("password", [None, PASSWORD], ids=["plain", "encrypted"])
def test_each_apps_media_is_archived_with_its_database_and_restored_byte_for_byte(tmp_path, phone, password):
    builder = build(tmp_path / "backup", phone, password)
    ok(*sync_args(builder, tmp_path, password))
    for name, files in MEDIA.items():
        out = tmp_path / "restored" / name
        ok("restore", "--from", nas(tmp_path), "--source", name, tmp_path / f"{name}.sqlite", "--media", out)
        assert tree(out) == {f"ios-backup/{path}": data for (_, path), data in files.items()}
    shard = tmp_path / "restored" / "message_1"
    result = cli("restore", "--from", nas(tmp_path), "--source", "anns-iphone.wechat.message_1",
                 tmp_path / "m1.sqlite", "--media", shard)
    assert result.exit_code != 0 and "no media" in result.output  # WeChat's media is listed once, with MM.sqlite
    assert not [p for p in (tmp_path / "state").rglob("*") if p.is_file() and p.parent.name == "media-opened"]


def test_unchanged_media_is_not_decrypted_again_and_a_changed_file_alone_is(tmp_path, phone, monkeypatch):
    builder = build(tmp_path / "backup", phone, PASSWORD)
    args = sync_args(builder, tmp_path, PASSWORD)
    ok(*args)
    decrypted = []
    real = backup_module.decrypt_file
    monkeypatch.setattr(backup_module, "decrypt_file", lambda *a, **k: decrypted.append(a[4]) or real(*a, **k))
    before = {p: p.stat().st_mtime_ns for p in nas(tmp_path).rglob("*") if p.is_file()}
    ok(*args)
    assert decrypted == []
    assert {p: p.stat().st_mtime_ns for p in nas(tmp_path).rglob("*") if p.is_file()} == before
    photo = ("MediaDomain", "Library/SMS/Attachments/0a/10/GUID-1/IMG_0001.HEIC")
    builder.put(photo, b"the photo, edited on the phone")
    builder.write()
    ok(*args)
    assert decrypted == [f"{photo[0]} {photo[1]}"]
    out = tmp_path / "restored"
    ok("restore", "--from", nas(tmp_path), "--source", "anns-iphone.imessage", tmp_path / "i.sqlite", "--media", out)
    assert (out / "ios-backup" / photo[1]).read_bytes() == b"the photo, edited on the phone"


def test_the_daemon_archives_a_backups_media_and_a_new_attachment_in_the_next_backup(tmp_path, phone):
    from daemon_rig import wait_for
    from test_ios_backup_daemon import backup_rig

    rig, builder = backup_rig(tmp_path, phone)
    attachments = MEDIA["anns-iphone.imessage"]
    for place, data in attachments.items():
        builder.put(place, data)
    builder.write()

    tries = itertools.count()

    def restored() -> dict:  # media restores into a new folder: one per try
        n = next(tries)
        out = tmp_path / f"restored-{n}"
        result = cli("restore", "--from", rig.targets[0], "--source", "ann.imessage", tmp_path / f"i{n}.sqlite",
                     "--media", out)
        return tree(out) if result.exit_code == 0 else {}

    rig.start()
    try:
        rig.wait_started()
        expected = {f"ios-backup/{path}": data for (_, path), data in attachments.items()}
        wait_for(lambda: restored() == expected, what=lambda: rig.log())
        voice = ("MediaDomain", "Library/SMS/Attachments/0d/13/GUID-4/voice.caf")
        builder.put(voice, b"a voice note from the next backup")
        builder.write()
        expected[f"ios-backup/{voice[1]}"] = b"a voice note from the next backup"
        wait_for(lambda: restored() == expected, what=lambda: rig.log())
    finally:
        rig.stop()
    assert "Traceback" not in rig.log()


def test_a_damaged_media_file_is_left_out_and_holds_back_nothing_else(tmp_path, phone):
    builder = build(tmp_path / "backup", phone, PASSWORD)
    clip = (WHATSAPP[0], "Message/Media/4915@s.whatsapp.net/a/b/clip.mp4")
    stored = builder.folder / builder._stored(clip)
    stored.write_bytes(stored.read_bytes()[:-16])  # a cipher block short of its record
    result = ok(*sync_args(builder, tmp_path, PASSWORD))
    whatsapp = [r for r in json_reports(result.output) if r["source"] == "anns-iphone.whatsapp"][0]
    assert whatsapp["version"] == 1 and whatsapp["media"]["changed_while_read"] == 1
    out = tmp_path / "restored"
    ok("restore", "--from", nas(tmp_path), "--source", "anns-iphone.whatsapp", tmp_path / "w.sqlite", "--media", out)
    assert tree(out) == {f"ios-backup/{path}": data for (_, path), data in MEDIA["anns-iphone.whatsapp"].items()
                         if (_, path) != clip}
    assert not [p for p in (tmp_path / "state").rglob("*") if p.is_file() and "media-opened" in p.parts]


def json_reports(output: str) -> list[dict]:
    import json

    value = json.loads(output)
    return value if isinstance(value, list) else [value]
