"""iOS backups end to end through the real CLI: sync a backup, list and restore its sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SHARED_FIXTURES
from ios_backup_builder import SMS, WHATSAPP, BackupBuilder, edited, phone_files, wechat_path
from logical import assert_same_database
from syncd.cli import main
from syncd_ios_backup import backup as backup_module

PASSWORD = "a backup password"
NAMES = {"anns-iphone.imessage": SMS, "anns-iphone.whatsapp": WHATSAPP,
         "anns-iphone.wechat.MM": wechat_path("wxid_ann", "MM"),
         "anns-iphone.wechat.message_2": wechat_path("wxid_ann", "message_2")}


@pytest.fixture(scope="module")
def phone(tmp_path_factory) -> dict:
    if not SHARED_FIXTURES.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
    return phone_files(tmp_path_factory.mktemp("apps"), SHARED_FIXTURES)


def cli(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(*result.exc_info)))
    return result


def ok(*args) -> object:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def nas(tmp_path: Path) -> Path:
    """The folder target (a NAS share), there before syncd is pointed at it."""
    target = tmp_path / "nas"
    target.mkdir(exist_ok=True)
    return target


def secret_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"password-{abs(hash(text))}"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def build(folder: Path, phone: dict, password: str | None) -> BackupBuilder:
    builder = BackupBuilder(folder, password=password)
    for place, data in phone.items():
        builder.put(place, data)
    builder.write()
    return builder


def expected(phone: dict, place: tuple[str, str], folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    out = folder / place[1].replace("/", "_")
    out.write_bytes(phone[place])
    if (wal := (place[0], place[1] + "-wal")) in phone:
        Path(f"{out}-wal").write_bytes(phone[wal])
    return out


def sources_on(target: Path) -> set[str]:
    """The source names `syncd log --from T --json` lists."""
    listing = json.loads(ok("log", "--from", target, "--json").stdout)
    found = set()

    def walk(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in ("source", "name") and isinstance(inner, str):
                    found.add(inner)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(listing)
    return found


@pytest.mark.parametrize("password", [None, PASSWORD], ids=["plain", "encrypted"])
def test_sync_a_backup_then_restore_each_app(tmp_path, phone, password):
    folder = build(tmp_path / "Backup" / "00008110", phone, password).folder
    target, state = nas(tmp_path), tmp_path / "state"
    args = ["sync", folder.parent, "--to", target, "--state", state]
    if password:
        args += ["--password-file", secret_file(tmp_path, password)]
    ok(*args)
    assert set(NAMES) <= sources_on(target)
    for name, place in NAMES.items():
        out = tmp_path / "restored" / f"{name}.sqlite"
        out.parent.mkdir(exist_ok=True)
        ok("restore", "--from", target, "--source", name, out)
        assert_same_database(expected(phone, place, tmp_path / "expected"), out)  # integrity_check too
    if password:  # the decrypted copies are gone from the state dir once the pass is done
        assert not list(state.rglob("db.sqlite"))


def test_an_unchanged_encrypted_backup_decrypts_nothing_on_the_next_pass(tmp_path, phone, monkeypatch):
    builder = build(tmp_path / "backup", phone, PASSWORD)
    target, state = nas(tmp_path), tmp_path / "state"
    args = ["sync", builder.folder, "--to", target, "--state", state,
            "--password-file", secret_file(tmp_path, PASSWORD)]
    ok(*args)
    decrypted, derived = [], []
    real_decrypt, real_derive = backup_module.decrypt_file, backup_module.class_keys
    monkeypatch.setattr(backup_module, "decrypt_file", lambda *a, **k: decrypted.append(a) or real_decrypt(*a, **k))
    monkeypatch.setattr(backup_module, "class_keys", lambda *a, **k: derived.append(1) or real_derive(*a, **k))
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    ok(*args)
    assert (decrypted, derived) == ([], [])
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()} == before

    # A new message in one app: only that app's database is decrypted.
    newer = edited(phone[SMS], tmp_path / "sms.db", "a newer text")
    builder.put(SMS, newer.read_bytes())
    builder.write()
    ok(*args)
    assert len(decrypted) == 1 and len(derived) == 1
    ok("restore", "--from", target, "--source", "anns-iphone.imessage", tmp_path / "out.db")
    assert_same_database(newer, tmp_path / "out.db")


def test_a_wrong_password_exits_2_and_archives_nothing(tmp_path, phone):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}, PASSWORD).folder
    target = nas(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "syncd", "sync", str(folder), "--to", str(target),
                           "--state", str(tmp_path / "state"),
                           "--password-file", str(secret_file(tmp_path, "wrong guess"))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "password is wrong" in proc.stderr and "Traceback" not in proc.stderr
    assert "wrong guess" not in proc.stdout + proc.stderr
    assert not any(p.is_file() for p in target.rglob("*"))


def test_a_backup_in_progress_is_refused_and_nothing_archived(tmp_path, phone):
    builder = build(tmp_path / "backup", {SMS: phone[SMS]}, None)
    builder.state = "uploading"
    builder.write()
    result = cli("sync", builder.folder, "--to", nas(tmp_path), "--state", tmp_path / "state")
    assert result.exit_code == 2 and "not a finished backup" in result.output
    assert not any(p.is_file() for p in (tmp_path / "nas").rglob("*"))


def test_syncing_leaves_the_backup_folder_as_it_was(tmp_path, phone):
    for password in (None, PASSWORD):
        folder = build(tmp_path / f"backup-{bool(password)}", phone, password).folder
        for path in folder.rglob("*"):  # access times before modification times: a read would move them
            if path.is_file():
                st = path.stat()
                os.utime(path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
        before = {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_atime_ns) for p in folder.rglob("*")}
        args = ["sync", folder, "--to", nas(tmp_path), "--state", tmp_path / "state"]
        if password:
            args += ["--password-file", secret_file(tmp_path, password)]
        ok(*args)
        ok(*args)
        after = {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_atime_ns) for p in folder.rglob("*")}
        assert after == before
