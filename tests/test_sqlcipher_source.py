"""The sqlcipher source kind: WeChat Android (derived key), Signal Desktop (config.json), any SQLCipher file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import apsw
import pytest
import sqlcipher3
from click.testing import CliRunner

import crypt_builders as cb
from logical import assert_same_database, logical_state
from syncd.cli import main
from syncd.discover import discover
from syncd.errors import KeyProblem, SourceError, UsageError
from syncd.plugins import plugin_manager
from syncd.source import SourceOptions
from syncd.testing import SourceKindContract
from syncd_sqlcipher import SQLCipherSource

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
WHATSAPP_IOS = FIXTURES / "whatsapp-ios-ChatStorage.sqlite"
WECHAT_SETTINGS = {"imei": cb.WECHAT_IMEI, "uin": cb.WECHAT_UIN}


def folder_state(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def every_byte_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def materialised(path: Path, options: SourceOptions, workdir: Path):
    source = SQLCipherSource(path, options, workdir)
    db, = source.databases()
    return db, source.materialise(db)


@pytest.fixture
def wechat(tmp_path):
    return cb.wechat_sqlcipher(tmp_path)


@pytest.fixture
def signal(tmp_path):
    if not WHATSAPP_IOS.is_file():
        pytest.skip("the shared fixtures are not here")
    return cb.signal_desktop(tmp_path, WHATSAPP_IOS)


def test_the_kind_loads_through_its_entry_point():
    kinds = [cls for classes in plugin_manager().hook.register_sources() for cls in classes]
    assert SQLCipherSource in kinds


def test_wechat_with_the_key_derived_from_imei_and_uin(wechat, tmp_path):
    encrypted, plain = wechat
    before = folder_state(encrypted.parent)
    assert SQLCipherSource.recognises(encrypted) and not SQLCipherSource.recognises(plain)
    db, out = materialised(encrypted, SourceOptions(settings=WECHAT_SETTINGS), tmp_path / "work")
    assert (db.name, db.app) == ("wechat", "wechat")
    assert db.origin == {"kind": "sqlcipher", "app": "wechat", "compatibility": "1", "key_form": "passphrase"}
    assert_same_database(plain, out)
    assert logical_state(out)["pragmas"]["page_size"] == 1024
    assert folder_state(encrypted.parent) == before  # no -wal, -shm or journal beside the phone's file
    assert out.parent == tmp_path / "work" and sorted(os.listdir(out.parent)) == [out.name]
    assert oct(out.stat().st_mode & 0o777) == oct(0o600)
    key = cb.wechat_key().encode()
    assert key not in db.signature.encode() and key not in str(db.origin).encode()


def test_wechat_with_the_seven_characters_in_a_key_file(wechat, tmp_path):
    encrypted, plain = wechat
    key_file = cb.write_key_file(tmp_path / "wechat.key", cb.wechat_key())
    _db, out = materialised(encrypted, SourceOptions(key_file=key_file), tmp_path / "work")
    assert_same_database(plain, out)


def test_a_key_file_others_can_read_is_refused(wechat, tmp_path):
    encrypted, _plain = wechat
    key_file = cb.write_key_file(tmp_path / "wechat.key", cb.wechat_key())
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyProblem, match="can be read by others"):
        SQLCipherSource(encrypted, SourceOptions(key_file=key_file), tmp_path / "work").databases()


def test_no_key_at_all_is_one_line_with_a_hint(wechat, tmp_path):
    encrypted, _plain = wechat
    with pytest.raises(KeyProblem, match="needs its key") as caught:
        SQLCipherSource(encrypted, SourceOptions(), tmp_path / "work").databases()
    assert "imei" in caught.value.hint and "\n" not in str(caught.value)


def test_a_wrong_key_names_the_file_never_the_key(wechat, tmp_path):
    encrypted, _plain = wechat
    wrong = "0badkey"
    key_file = cb.write_key_file(tmp_path / "wrong.key", wrong)
    source = SQLCipherSource(encrypted, SourceOptions(key_file=key_file), tmp_path / "work")
    db, = source.databases()
    with pytest.raises(KeyProblem) as caught:
        source.materialise(db)
    message = f"{caught.value} {caught.value.hint}"
    assert str(encrypted) in message and wrong not in message and cb.wechat_key() not in message
    assert os.listdir(tmp_path / "work") == []  # nothing half-written, no encrypted copy left


def test_wrong_cipher_settings_read_as_a_wrong_key(wechat, tmp_path):
    encrypted, _plain = wechat
    options = SourceOptions(settings={**WECHAT_SETTINGS, "compatibility": "4"})
    with pytest.raises(KeyProblem, match="SQLCipher 4 settings"):
        materialised(encrypted, options, tmp_path / "work")


def test_signal_desktop_folder_with_its_key_in_config_json(signal, tmp_path):
    folder, plain = signal
    assert SQLCipherSource.recognises(folder) and SQLCipherSource.recognises(folder / "sql" / "db.sqlite")
    for given in (folder, folder / "sql" / "db.sqlite"):
        db, out = materialised(given, SourceOptions(), tmp_path / "work")
        assert (db.name, db.app) == ("signal", "signal")
        assert db.origin == {"kind": "sqlcipher", "app": "signal", "compatibility": "4", "key_form": "raw"}
        assert_same_database(plain, out)
    assert cb.SIGNAL_KEY.encode() not in every_byte_under(tmp_path / "work")


def test_signal_with_a_live_wal_reads_the_latest_commits(signal, tmp_path):
    """Signal keeps a -wal; messages only in it must come through, and the phone's folder stays as it was."""
    folder, plain = signal
    live = tmp_path / "live"
    (live / "sql").mkdir(parents=True)
    (live / "config.json").write_bytes((folder / "config.json").read_bytes())
    writer = sqlcipher3.connect(str(folder / "sql" / "db.sqlite"), isolation_level=None)
    writer.execute(f"PRAGMA key = \"x'{cb.SIGNAL_KEY}'\"")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE ZWAMESSAGE SET ZTEXT = 'only in the wal' WHERE Z_PK = (SELECT min(Z_PK) FROM ZWAMESSAGE)")
    for suffix in ("", "-wal"):  # copied as a sync tool would, while the app is open
        (live / "sql" / f"db.sqlite{suffix}").write_bytes((folder / "sql" / f"db.sqlite{suffix}").read_bytes())
    writer.close()
    assert (live / "sql" / "db.sqlite-wal").stat().st_size > 0
    before = folder_state(live / "sql")
    _db, out = materialised(live, SourceOptions(), tmp_path / "work")
    texts = [row[0] for row in apsw.Connection(str(out)).execute("SELECT ZTEXT FROM ZWAMESSAGE")]
    assert "only in the wal" in texts
    assert folder_state(live / "sql") == before


def test_signal_key_only_in_the_keychain_is_one_clear_line(tmp_path):
    if not WHATSAPP_IOS.is_file():
        pytest.skip("the shared fixtures are not here")
    folder, _plain = cb.signal_desktop(tmp_path, WHATSAPP_IOS, config={"encryptedKey": "763130" + "ab" * 60})
    with pytest.raises(KeyProblem, match="encryptedKey") as caught:
        SQLCipherSource(folder, SourceOptions(), tmp_path / "work").databases()
    assert "--key-file" in caught.value.hint


@pytest.mark.parametrize("text", [b"[" * 100_000, b"\xff{}", b"[1, 2]"])
def test_a_damaged_signal_config_is_one_line(signal, tmp_path, text):
    folder, _plain = signal
    (folder / "config.json").write_bytes(text)
    with pytest.raises(SourceError, match="not Signal Desktop's config") as caught:
        SQLCipherSource(folder, SourceOptions(), tmp_path / "work").databases()
    assert "\n" not in str(caught.value)


def test_signal_with_the_key_in_a_key_file_instead(tmp_path):
    if not WHATSAPP_IOS.is_file():
        pytest.skip("the shared fixtures are not here")
    folder, plain = cb.signal_desktop(tmp_path, WHATSAPP_IOS, config={"encryptedKey": "763130abcd"})
    key_file = cb.write_key_file(tmp_path / "signal.key", cb.SIGNAL_KEY)
    _db, out = materialised(folder, SourceOptions(key_file=key_file), tmp_path / "work")
    assert_same_database(plain, out)


def test_a_damaged_page_is_a_damaged_file_not_a_wrong_key(signal, tmp_path):
    folder, _plain = signal
    db_file = folder / "sql" / "db.sqlite"
    data = bytearray(db_file.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    data[2 * page + 100: 2 * page + 140] = bytes(40)
    db_file.write_bytes(bytes(data))
    with pytest.raises(SourceError, match="is damaged") as caught:
        materialised(folder, SourceOptions(), tmp_path / "work")
    assert not isinstance(caught.value, KeyProblem)
    assert os.listdir(tmp_path / "work") == []


def test_any_sqlcipher_file_with_explicit_settings(wechat, tmp_path):
    """SQLCipher 3's defaults spelled out one by one open a file written with compatibility 3."""
    _encrypted, plain = wechat
    encrypted = cb.encrypt_sqlcipher(plain, tmp_path / "notes.db", "'correct horse'", 3)
    key_file = cb.write_key_file(tmp_path / "notes.key", "correct horse")
    spelled = {"compatibility": "4", "page_size": "1024", "kdf_iter": "64000", "hmac": "on",
               "hmac_algorithm": "hmac_sha1", "kdf_algorithm": "pbkdf2_hmac_sha1"}
    db, out = materialised(encrypted, SourceOptions(key_file=key_file, settings=spelled), tmp_path / "work")
    assert db.name == "notes" and db.app is None
    assert db.origin["kdf_iter"] == "64000" and db.origin["hmac_algorithm"] == "HMAC_SHA1"
    assert_same_database(plain, out)


@pytest.mark.parametrize("settings, problem", [
    ({"compatibility": "5"}, "compatibility"),
    ({"page_size": "1000"}, "page_size"),
    ({"kdf_iter": "1; DROP TABLE x"}, "kdf_iter"),
    ({"hmac": "maybe"}, "hmac"),
    ({"kdf_algorithm": "MD5"}, "kdf_algorithm"),
    ({"key_form": "hex"}, "key_form"),
])
def test_bad_settings_are_one_line_before_anything_is_read(wechat, tmp_path, settings, problem):
    encrypted, _plain = wechat
    with pytest.raises(UsageError, match=problem) as caught:
        SQLCipherSource(encrypted, SourceOptions(settings=settings), tmp_path / "work")
    assert caught.value.exit_code == 2


def test_signature_changes_with_the_file_and_only_then(wechat, tmp_path):
    encrypted, _plain = wechat
    source = SQLCipherSource(encrypted, SourceOptions(settings=WECHAT_SETTINGS), tmp_path / "work")
    first = source.databases()[0].signature
    assert source.databases()[0].signature == first
    encrypted.write_bytes(encrypted.read_bytes())  # rewritten in place: same bytes, new times
    assert source.databases()[0].signature != first


def test_recognises_only_encrypted_looking_files(tmp_path):
    rng = random.Random(1)
    noise = tmp_path / "noise.db"
    noise.write_bytes(rng.randbytes(8192))
    odd = tmp_path / "odd.db"
    odd.write_bytes(rng.randbytes(8191))  # not a whole number of pages
    tiny = tmp_path / "tiny.db"
    tiny.write_bytes(rng.randbytes(512))
    text = tmp_path / "text.db"
    text.write_bytes(b"hello " * 2048)
    assert SQLCipherSource.recognises(noise)
    assert not any(SQLCipherSource.recognises(p) for p in (odd, tiny, text, tmp_path, tmp_path / "missing"))


def test_write_back_gives_the_app_its_own_file(wechat, tmp_path):
    """Restore into the app: the same cipher settings, the key from the key file, every row."""
    encrypted, plain = wechat
    db, out = materialised(encrypted, SourceOptions(settings=WECHAT_SETTINGS), tmp_path / "work")
    key_file = cb.write_key_file(tmp_path / "wechat.key", cb.wechat_key())
    back = tmp_path / "back" / "EnMicroMsg.db"
    back.parent.mkdir()
    SQLCipherSource.write_back(out, back, db.origin, SourceOptions(key_file=key_file))
    assert back.read_bytes()[:16] != b"SQLite format 3\x00"
    assert sorted(os.listdir(back.parent)) == ["EnMicroMsg.db"]
    # Opened as WeChat would: its key, cipher compatibility 1, 1 KiB pages.
    app = sqlcipher3.connect(str(back))
    app.execute(f"PRAGMA key = '{cb.wechat_key()}'")
    app.execute("PRAGMA cipher_compatibility = 1")
    assert app.execute("PRAGMA page_size").fetchone()[0] in (1024, "1024")
    original = apsw.Connection(str(plain))
    for table in ("message", "rcontact", "fts_meta", "rconversation"):
        query = f"SELECT rowid, * FROM {table} ORDER BY rowid"
        assert app.execute(query).fetchall() == original.execute(query).fetchall()
    assert app.execute("PRAGMA user_version").fetchone()[0] == original.execute("PRAGMA user_version").fetchone()[0]
    app.close()
    # And read back through the kind, it is the database WeChat had.
    _db, again = materialised(back, SourceOptions(settings=WECHAT_SETTINGS), tmp_path / "again")
    assert_same_database(plain, again)


def test_write_back_signal_keeps_sqlcipher_4_and_wal(signal, tmp_path):
    folder, plain = signal
    db, out = materialised(folder, SourceOptions(), tmp_path / "work")
    key_file = cb.write_key_file(tmp_path / "signal.key", cb.SIGNAL_KEY)
    back = tmp_path / "db.sqlite"
    SQLCipherSource.write_back(out, back, db.origin, SourceOptions(key_file=key_file))
    app = sqlcipher3.connect(str(back))
    app.execute(f"PRAGMA key = \"x'{cb.SIGNAL_KEY}'\"")
    assert app.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert app.execute("PRAGMA cipher_provider").fetchone() is not None
    app.close()
    _db, again = materialised(back, SourceOptions(key_file=key_file), tmp_path / "again")
    assert_same_database(plain, again)


def test_write_back_with_a_wrong_key_file_mode_writes_nothing(wechat, tmp_path):
    encrypted, _plain = wechat
    db, out = materialised(encrypted, SourceOptions(settings=WECHAT_SETTINGS), tmp_path / "work")
    key_file = cb.write_key_file(tmp_path / "wechat.key", cb.wechat_key())
    os.chmod(key_file, 0o640)
    back = tmp_path / "back"
    back.mkdir()
    with pytest.raises(KeyProblem):
        SQLCipherSource.write_back(out, back / "EnMicroMsg.db", db.origin, SourceOptions(key_file=key_file))
    assert os.listdir(back) == []


# --- The seam's conformance suite, and the whole path through the CLI --------------------------

PASSPHRASE = "correct horse battery staple 42"


class TestSQLCipherKindContract(SourceKindContract):
    @pytest.fixture
    def kind(self):
        return SQLCipherSource

    @pytest.fixture
    def source_path(self, tmp_path):
        plain = cb.wechat_plain(tmp_path / "plain.db", messages=60)
        (tmp_path / "phone").mkdir()
        return cb.encrypt_sqlcipher(plain, tmp_path / "phone" / "notes.db", f"'{PASSPHRASE}'", 4)

    @pytest.fixture
    def options(self, tmp_path):
        return SourceOptions(key_file=cb.write_key_file(tmp_path / "notes.key", PASSPHRASE))

    @pytest.fixture
    def wrong_options(self, tmp_path):
        return SourceOptions(key_file=cb.write_key_file(tmp_path / "wrong.key", "not the passphrase"))

    @pytest.fixture
    def secret(self):
        return PASSPHRASE

    @pytest.fixture
    def change_source(self, source_path):
        def change():
            app = sqlcipher3.connect(str(source_path), isolation_level=None)
            app.execute(f"PRAGMA key = '{PASSPHRASE}'")
            app.execute("UPDATE message SET content = 'edited' WHERE msgId = (SELECT max(msgId) FROM message)")
            app.close()
        return change


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def files_hold(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_cli_sync_and_restore_a_wechat_database_and_write_it_back(wechat, tmp_path):
    encrypted, plain = wechat
    key_file = cb.write_key_file(tmp_path / "wechat.key", cb.wechat_key())
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    result = run("sync", encrypted, "--to", target, "--key-file", key_file, "--state", state)
    assert result.exit_code == 0, result.output
    restored = tmp_path / "restored.db"
    result = run("restore", "--from", target, restored)
    assert result.exit_code == 0, result.output
    assert_same_database(plain, restored)
    back = tmp_path / "EnMicroMsg.db"
    result = run("restore", "--from", target, back, "--key-file", key_file)
    assert result.exit_code == 0, result.output
    _db, again = materialised(back, SourceOptions(key_file=key_file), tmp_path / "again")
    assert_same_database(plain, again)
    assert files_hold(state, cb.wechat_key()) == [] and files_hold(target, cb.wechat_key()) == []


def test_cli_signal_folder_takes_its_key_from_config_json(signal, tmp_path):
    folder, plain = signal
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    result = run("sync", folder, "--to", target, "--state", state)
    assert result.exit_code == 0, result.output
    restored = tmp_path / "restored.db"
    assert run("restore", "--from", target, restored).exit_code == 0
    assert_same_database(plain, restored)
    assert files_hold(state, cb.SIGNAL_KEY) == [] and files_hold(target, cb.SIGNAL_KEY) == []


def test_cli_wrong_key_is_exit_2_and_archives_nothing(wechat, tmp_path):
    encrypted, _plain = wechat
    key_file = cb.write_key_file(tmp_path / "wrong.key", "1234567")
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    result = run("sync", encrypted, "--to", target, "--key-file", key_file, "--state", state)
    assert result.exit_code == 2
    assert str(encrypted) in result.output and "1234567" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert list(target.iterdir()) == []
    assert files_hold(state, "1234567") == []


def test_cli_settings_reach_the_kind(wechat, tmp_path):
    encrypted, plain = wechat
    state, target = tmp_path / "state", tmp_path / "nas"
    target.mkdir()
    renamed = encrypted.with_name("wechat-copy.db")  # not recognised as WeChat by its name
    encrypted.rename(renamed)
    result = run("sync", renamed, "--to", target, "--state", state, "--kind", "sqlcipher",
                 "--setting", f"imei={cb.WECHAT_IMEI}", "--setting", f"uin={cb.WECHAT_UIN}")
    assert result.exit_code == 0, result.output
    restored = tmp_path / "restored.db"
    assert run("restore", "--from", target, restored).exit_code == 0
    assert_same_database(plain, restored)


def test_syncd_sources_finds_signal_desktop_in_the_home_folder(tmp_path):
    if not WHATSAPP_IOS.is_file():
        pytest.skip("the shared fixtures are not here")
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    folder, _plain = cb.signal_desktop(tmp_path, WHATSAPP_IOS)
    folder.rename(home / ".config" / "Signal")
    found = [f for f in discover(plugin_manager(), home) if f.kind == "sqlcipher"]
    assert [(f.path, f.name, f.app, f.readable) for f in found] == [
        (home / ".config" / "Signal", "signal-desktop", "signal", True)]
