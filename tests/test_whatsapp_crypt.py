"""The whatsapp-crypt source kind: msgstore.db.crypt15 (64-hex key) and .crypt14 (WhatsApp's key file)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import crypt_builders as cb
from logical import assert_same_database
from syncd.cli import main
from syncd.errors import KeyProblem, SourceError
from syncd.plugins import plugin_manager
from syncd.samples import create_whatsapp
from syncd.source import SourceOptions
from syncd.testing import SourceKindContract
from syncd_whatsapp_crypt import WhatsAppCryptSource, backup

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
WHATSAPP_IOS = FIXTURES / "whatsapp-ios-ChatStorage.sqlite"


@pytest.fixture
def plain(tmp_path) -> Path:
    """WhatsApp's own database (the iOS fixture), or the Android-shaped sample without it."""
    if WHATSAPP_IOS.is_file():
        return WHATSAPP_IOS
    path = tmp_path / "msgstore.db"
    create_whatsapp(path, messages=300)
    return path


@pytest.fixture
def rng():
    return random.Random(15)


@pytest.fixture
def crypt15(tmp_path, plain, rng):
    """(the backup, its key file with 64 hex digits, the root key)."""
    root = rng.randbytes(32)
    phone = tmp_path / "Databases"
    phone.mkdir()
    path = phone / "msgstore.db.crypt15"
    path.write_bytes(cb.crypt15(plain.read_bytes(), root, rng.randbytes(16)))
    return path, cb.write_key_file(tmp_path / "backup.key", root.hex()), root


@pytest.fixture
def crypt14(tmp_path, plain, rng):
    salt, aes = rng.randbytes(32), rng.randbytes(32)
    path = tmp_path / "msgstore.db.crypt14"
    path.write_bytes(cb.crypt14(plain.read_bytes(), salt, aes, rng.randbytes(16), rng))
    key_file = tmp_path / "key"
    key_file.write_bytes(cb.crypt14_key_file(salt, aes, rng))
    os.chmod(key_file, 0o600)
    return path, key_file


def materialised(path: Path, key_file: Path | None, workdir: Path):
    source = WhatsAppCryptSource(path, SourceOptions(key_file=key_file), workdir)
    db, = source.databases()
    return db, source.materialise(db)


def test_the_kind_loads_through_its_entry_point():
    kinds = [cls for classes in plugin_manager().hook.register_sources() for cls in classes]
    assert WhatsAppCryptSource in kinds


def test_crypt15_with_the_64_digit_key(crypt15, plain, tmp_path):
    path, key_file, root = crypt15
    before = sorted(os.listdir(path.parent)), path.stat().st_mtime_ns
    assert WhatsAppCryptSource.recognises(path)
    db, out = materialised(path, key_file, tmp_path / "work")
    assert (db.name, db.app, db.origin) == ("whatsapp", "whatsapp", {"kind": "whatsapp-crypt", "format": "crypt15"})
    assert out.read_bytes() == plain.read_bytes()
    assert_same_database(plain, out)
    assert oct(out.stat().st_mode & 0o777) == oct(0o600) and os.listdir(out.parent) == [out.name]
    assert (sorted(os.listdir(path.parent)), path.stat().st_mtime_ns) == before
    assert root.hex().encode() not in db.signature.encode()


def test_the_test_encoder_agrees_with_an_independent_decryptor(crypt15, crypt14, plain, tmp_path):
    """whatsapp-chat-exporter (MIT; pycryptodome) opens what the tests' encoder writes."""
    from Whatsapp_Chat_Exporter import android_crypt
    from Whatsapp_Chat_Exporter.utility import Crypt, DbType

    path15, _key_file, root = crypt15
    out = tmp_path / "theirs15.db"
    android_crypt.decrypt_backup(path15.read_bytes(), root, str(out), crypt=Crypt.CRYPT15, db_type=DbType.MESSAGE)
    assert out.read_bytes() == plain.read_bytes()
    path14, key_file14 = crypt14
    out = tmp_path / "theirs14.db"
    android_crypt.decrypt_backup(path14.read_bytes(), key_file14.read_bytes(), str(out), crypt=Crypt.CRYPT14)
    assert out.read_bytes() == plain.read_bytes()


def test_crypt15_with_the_encrypted_backup_key_file(tmp_path, plain, rng):
    root = rng.randbytes(32)
    path = tmp_path / "msgstore-2026-11-30.1.db.crypt15"
    path.write_bytes(cb.crypt15(plain.read_bytes(), root, rng.randbytes(16)))
    key_file = tmp_path / "encrypted_backup.key"
    key_file.write_bytes(cb.java_bytes(root))
    os.chmod(key_file, 0o600)
    _db, out = materialised(path, key_file, tmp_path / "work")
    assert out.read_bytes() == plain.read_bytes()


def test_crypt14_with_whatsapps_key_file(crypt14, plain, tmp_path):
    path, key_file = crypt14
    assert WhatsAppCryptSource.recognises(path)
    db, out = materialised(path, key_file, tmp_path / "work")
    assert db.origin["format"] == "crypt14"
    assert out.read_bytes() == plain.read_bytes()


def test_a_header_without_the_feature_byte_parses(plain, rng, tmp_path):
    root = rng.randbytes(32)
    path = tmp_path / "wa.db.crypt15"
    path.write_bytes(cb.crypt15(plain.read_bytes(), root, rng.randbytes(16), feature_flag=False))
    _db, out = materialised(path, cb.write_key_file(tmp_path / "k", root.hex()), tmp_path / "work")
    assert out.read_bytes() == plain.read_bytes()


def test_a_wrong_key_names_the_file_never_the_key(crypt15, tmp_path, rng):
    path, _key_file, root = crypt15
    wrong = rng.randbytes(32).hex()
    key_file = cb.write_key_file(tmp_path / "wrong.key", wrong)
    with pytest.raises(KeyProblem) as caught:
        materialised(path, key_file, tmp_path / "work")
    message = f"{caught.value} {caught.value.hint}"
    assert str(path) in message and wrong not in message and root.hex() not in message
    assert os.listdir(tmp_path / "work") == []


def test_a_crypt14_key_file_of_another_account_is_a_key_problem(crypt14, tmp_path, rng):
    path, _key_file = crypt14
    other = tmp_path / "other-key"
    other.write_bytes(cb.crypt14_key_file(rng.randbytes(32), rng.randbytes(32), rng))
    os.chmod(other, 0o600)
    with pytest.raises(KeyProblem, match="does not belong"):
        materialised(path, other, tmp_path / "work")


def test_each_format_asks_for_its_own_kind_of_key(crypt15, crypt14, tmp_path):
    path15, key15, _root = crypt15
    path14, key14 = crypt14
    with pytest.raises(KeyProblem, match="64-digit"):
        materialised(path15, key14, tmp_path / "a")
    with pytest.raises(KeyProblem, match="key file"):
        materialised(path14, key15, tmp_path / "b")


def test_key_files_are_checked_before_anything_is_read(crypt15, tmp_path):
    path, key_file, _root = crypt15
    with pytest.raises(KeyProblem, match="needs its key"):
        WhatsAppCryptSource(path, SourceOptions(), tmp_path / "work").databases()
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyProblem, match="can be read by others"):
        WhatsAppCryptSource(path, SourceOptions(key_file=key_file), tmp_path / "work").databases()
    os.chmod(key_file, 0o600)
    key_file.write_text("not a key\n")
    with pytest.raises(KeyProblem, match="holds no WhatsApp backup key"):
        WhatsAppCryptSource(path, SourceOptions(key_file=key_file), tmp_path / "work").databases()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_backup_is_damaged_not_a_wrong_key(crypt15, tmp_path, damage):
    path, key_file, _root = crypt15
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        del data[len(data) // 2:]
    path.write_bytes(bytes(data))
    with pytest.raises(SourceError) as caught:
        materialised(path, key_file, tmp_path / "work")
    assert not isinstance(caught.value, KeyProblem) and "damaged" in str(caught.value)
    assert os.listdir(tmp_path / "work") == []


def test_decompression_stops_at_the_cap(tmp_path, rng):
    """A backup inflating to far more than it could hold stops there, leaving nothing behind."""
    root = rng.randbytes(32)
    bomb = b"SQLite format 3\x00" + bytes(64 << 20)  # 64 MiB of zeros: a ~64 KiB backup
    path = tmp_path / "msgstore.db.crypt15"
    path.write_bytes(cb.crypt15(bomb, root, rng.randbytes(16)))
    out = tmp_path / "out.db"
    with pytest.raises(SourceError, match="inflates past"):
        backup.decrypt(path, backup.BackupKey(root=root), out, cap=8 << 20)
    assert not out.exists()


def test_a_backup_of_something_else_is_refused(tmp_path, rng):
    root = rng.randbytes(32)
    path = tmp_path / "msgstore.db.crypt15"
    path.write_bytes(cb.crypt15(b"PK\x03\x04 not a database" * 100, root, rng.randbytes(16)))
    with pytest.raises(SourceError, match="no compressed SQLite database"):
        materialised(path, cb.write_key_file(tmp_path / "k", root.hex()), tmp_path / "work")


def test_recognises_the_suffix_and_the_header_shape(crypt15, tmp_path, rng):
    path, _key_file, _root = crypt15
    renamed = tmp_path / "msgstore.db"
    renamed.write_bytes(path.read_bytes())
    noise = tmp_path / "noise.crypt15"
    noise.write_bytes(b"\xff" + rng.randbytes(4096))
    empty = tmp_path / "empty.crypt14"
    empty.write_bytes(b"")
    assert WhatsAppCryptSource.recognises(path)
    assert not any(WhatsAppCryptSource.recognises(p) for p in (renamed, noise, empty, tmp_path / "gone.crypt15"))


def test_signature_follows_the_file(crypt15, tmp_path):
    path, key_file, _root = crypt15
    source = WhatsAppCryptSource(path, SourceOptions(key_file=key_file), tmp_path / "work")
    first = source.databases()[0].signature
    assert source.databases()[0].signature == first
    path.write_bytes(path.read_bytes())
    assert source.databases()[0].signature != first


@given(st.binary(max_size=300))
def test_hostile_headers_fail_only_as_not_a_header(head):
    try:
        header = backup.parse_header(head)
    except ValueError:
        return
    assert header.version in (14, 15) and len(header.iv) == 16 and header.start <= len(head)


def test_a_crypt14_salt_that_is_a_number_is_not_a_header():
    # field 3 of c14_cipher written as a varint, not 32 bytes: a ValueError, never a TypeError
    cipher = bytes([5 << 3 | 2, 16]) + bytes(16) + bytes([3 << 3 | 0, 7])
    prefix = bytes([2 << 3 | 2, len(cipher)]) + cipher
    with pytest.raises(ValueError):
        backup.parse_header(bytes([len(prefix), backup.FEATURE_FLAG]) + prefix)



# --- The seam's conformance suite, and the whole path through the CLI --------------------------

class TestWhatsAppCryptKindContract(SourceKindContract):
    @pytest.fixture
    def kind(self):
        return WhatsAppCryptSource

    @pytest.fixture
    def source_path(self, crypt15):
        return crypt15[0]

    @pytest.fixture
    def options(self, crypt15):
        return SourceOptions(key_file=crypt15[1])

    @pytest.fixture
    def wrong_options(self, tmp_path, rng):
        return SourceOptions(key_file=cb.write_key_file(tmp_path / "wrong.key", rng.randbytes(32).hex()))

    @pytest.fixture
    def secret(self, crypt15):
        return crypt15[2].hex()

    @pytest.fixture
    def change_source(self, crypt15, plain, rng):
        def change():  # tonight's backup replaces last night's
            crypt15[0].write_bytes(cb.crypt15(plain.read_bytes(), crypt15[2], rng.randbytes(16)))
        return change


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_sync_and_restore_a_crypt15_backup(crypt15, plain, tmp_path):
    path, key_file, root = crypt15
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    result = run("sync", path, "--to", target, "--key-file", key_file, "--state", state)
    assert result.exit_code == 0, result.output
    restored = tmp_path / "restored.db"
    assert run("restore", "--from", target, restored).exit_code == 0
    assert_same_database(plain, restored)
    for folder in (state, target):
        assert [p for p in folder.rglob("*") if p.is_file() and root.hex().encode() in p.read_bytes()] == []
    again = run("sync", path, "--to", target, "--key-file", key_file, "--state", state, "--json")
    assert again.exit_code == 0, again.output


def test_cli_wrong_key_is_exit_2_and_archives_nothing(crypt15, tmp_path, rng):
    path, _key_file, _root = crypt15
    wrong = rng.randbytes(32).hex()
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    result = run("sync", path, "--to", target, "--key-file", cb.write_key_file(tmp_path / "w.key", wrong),
                 "--state", state)
    assert result.exit_code == 2 and str(path) in result.output and wrong not in result.output
    assert list(target.iterdir()) == []


def test_cli_kind_forces_a_renamed_backup(crypt14, plain, tmp_path):
    path, key_file = crypt14
    renamed = path.with_name("backup.bin")
    path.rename(renamed)
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    result = run("sync", renamed, "--to", target, "--key-file", key_file, "--state", state,
                 "--kind", "whatsapp-crypt")
    assert result.exit_code == 0, result.output
    restored = tmp_path / "restored.db"
    assert run("restore", "--from", target, restored).exit_code == 0
    assert_same_database(plain, restored)


def test_cli_restore_key_file_refuses_a_whatsapp_archive(crypt15, tmp_path):
    """There is no way back into WhatsApp's backup format (yet): restore says so in one line."""
    path, key_file, _root = crypt15
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    assert run("sync", path, "--to", target, "--key-file", key_file, "--state", state).exit_code == 0
    result = run("restore", "--from", target, tmp_path / "out.db", "--key-file", key_file)
    assert result.exit_code == 2 and "whatsapp-crypt" in result.output
    assert not (tmp_path / "out.db").exists()
