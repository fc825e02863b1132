"""The ios-backup source kind, on backups built from the real fixtures (tests/ios_backup_builder.py)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import apsw
import pytest

from conftest import SHARED_FIXTURES
from ios_backup_builder import SMS, WHATSAPP, BackupBuilder, edited, file_id, phone_files, wechat_path
from logical import assert_same_database
from syncd.errors import KeyProblem, SourceError
from syncd.source import SourceOptions
from syncd_ios_backup import IOSBackup
from syncd_ios_backup import backup as backup_module

PASSWORD = "correct horse battery staple"
IMESSAGE_FIXTURE = SHARED_FIXTURES / "imessage-macos-chat.db"
WHATSAPP_FIXTURE = SHARED_FIXTURES / "whatsapp-ios-ChatStorage.sqlite"
EXPECTED_NAMES = {"anns-iphone.imessage", "anns-iphone.whatsapp", "anns-iphone.whatsapp-business",
                  "anns-iphone.wechat.MM", "anns-iphone.wechat.WCDB_Contact", "anns-iphone.wechat.message_1",
                  "anns-iphone.wechat.message_2"}


@pytest.fixture(scope="module")
def phone(tmp_path_factory) -> dict[tuple[str, str], bytes]:
    if not IMESSAGE_FIXTURE.exists() or not WHATSAPP_FIXTURE.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
    return phone_files(tmp_path_factory.mktemp("apps"), SHARED_FIXTURES)


def build(folder: Path, phone: dict, password: str | None = None, **options) -> BackupBuilder:
    builder = BackupBuilder(folder, password=password, **options)
    for place, data in phone.items():
        builder.put(place, data)
    builder.write()
    return builder


def password_file(tmp_path: Path, password: str = PASSWORD) -> Path:
    path = tmp_path / "backup-password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def open_kind(path: Path, tmp_path: Path, password: str | None = PASSWORD, **options) -> IOSBackup:
    work = tmp_path / "work"
    work.mkdir(mode=0o700, exist_ok=True)
    secret = password_file(tmp_path, password) if password is not None else None
    return IOSBackup(path, SourceOptions(password_file=secret, **options), work)


def expected_file(phone: dict, place: tuple[str, str], folder: Path) -> Path:
    """The phone's database (with its -wal) as a file of its own, to compare with."""
    folder.mkdir(exist_ok=True)
    out = folder / file_id(*place)
    out.write_bytes(phone[place])
    if (place[0], place[1] + "-wal") in phone:
        Path(f"{out}-wal").write_bytes(phone[(place[0], place[1] + "-wal")])
    return out


def readable(kind: IOSBackup, db, folder: Path) -> Path:
    """The materialised database and its companions, under the usual names in a folder of their own."""
    folder.mkdir()
    out = folder / "db.sqlite"
    source = kind.materialise(db)
    shutil.copyfile(source, out)
    companions = dict(db.companions) or {s: Path(f"{source}{s}") for s in ("-wal", "-journal")
                                         if Path(f"{source}{s}").exists()}
    for suffix, path in companions.items():
        shutil.copyfile(path, f"{out}{suffix}")
    return out


def place_of(db) -> tuple[str, str]:
    return db.origin["domain"], db.origin["path"]


def folder_state(folder: Path) -> dict:
    """Every entry under a folder: its size and times (access time too)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), folder)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                                        st.st_atime_ns)
    return found


def age_access_times(folder: Path) -> None:
    """Access times older than the modification times: a read would then move them (relatime)."""
    for root, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            os.utime(path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))


# -- recognising ---------------------------------------------------------------------------------

def test_recognises_a_backup_and_a_folder_of_backups_only(tmp_path, phone):
    folder = build(tmp_path / "Backup" / "00008110-001A", phone).folder
    assert IOSBackup.recognises(folder)
    assert IOSBackup.recognises(folder.parent)
    assert not IOSBackup.recognises(folder / "Manifest.db")
    (tmp_path / "empty").mkdir()
    assert not IOSBackup.recognises(tmp_path / "empty")
    (tmp_path / "only-db").mkdir()
    (tmp_path / "only-db" / "Manifest.db").write_bytes(b"x")
    assert not IOSBackup.recognises(tmp_path / "only-db")


# -- plain backups ------------------------------------------------------------------------------

def test_a_plain_backup_yields_each_chat_database_read_in_place(tmp_path, phone):
    folder = build(tmp_path / "backup", phone).folder
    kind = open_kind(folder, tmp_path, password=None)
    dbs = kind.databases()
    assert {db.name for db in dbs} == EXPECTED_NAMES
    apps = {db.name: db.app for db in dbs}
    assert apps["anns-iphone.imessage"] == "imessage" and apps["anns-iphone.whatsapp-business"] == "whatsapp-business"
    assert {apps[n] for n in EXPECTED_NAMES if ".wechat." in n} == {"wechat"}
    for n, db in enumerate(dbs):
        fid = file_id(*place_of(db))
        assert db.path == folder / fid[:2] / fid and kind.materialise(db) == db.path
        if place_of(db) == WHATSAPP:  # the -wal travels with its database, from where the backup keeps it
            wal = file_id(WHATSAPP[0], WHATSAPP[1] + "-wal")
            assert db.companions == {"-wal": folder / wal[:2] / wal}
        assert_same_database(expected_file(phone, place_of(db), tmp_path / "expected"),
                             readable(kind, db, tmp_path / f"read{n}"))
    assert not any(tmp_path.joinpath("work").rglob("*.sqlite")), "a plain backup is read in place"


def test_a_folder_of_backups_yields_each_devices_databases(tmp_path, phone):
    build(tmp_path / "Backup" / "aaaa1111", phone, device_name="Ann's iPhone")
    build(tmp_path / "Backup" / "bbbb2222", {SMS: phone[SMS]}, device_name="Bob’s iPad", seed=2)
    build(tmp_path / "Backup" / "cccc3333", {SMS: phone[SMS]}, device_name="Bob’s iPad", seed=3)
    names = {db.name for db in open_kind(tmp_path / "Backup", tmp_path, password=None).databases()}
    assert names == EXPECTED_NAMES | {"bobs-ipad-bbbb2222.imessage", "bobs-ipad-cccc3333.imessage"}


def test_the_users_name_replaces_the_device_part(tmp_path, phone):
    folder = build(tmp_path / "backup", {SMS: phone[SMS], WHATSAPP: phone[WHATSAPP]}).folder
    kind = open_kind(folder, tmp_path, password=None, name="ann")
    assert {db.name for db in kind.databases()} == {"ann.imessage", "ann.whatsapp"}


def test_several_wechat_accounts_are_told_apart(tmp_path, phone):
    mm = phone[wechat_path("wxid_ann", "MM")]
    folder = build(tmp_path / "backup", {wechat_path("wxid_ann", "MM"): mm, wechat_path("wxid_work", "MM"): mm}).folder
    names = sorted(db.name for db in open_kind(folder, tmp_path, password=None).databases())
    assert len(names) == 2 and all(n.startswith("anns-iphone.wechat.") and n.endswith(".MM") for n in names)
    assert names[0] != names[1]


def test_a_backup_in_progress_is_refused(tmp_path, phone):
    builder = build(tmp_path / "backup", phone)
    builder.state = "uploading"
    builder.write()
    with pytest.raises(SourceError, match="not a finished backup.*'uploading'") as caught:
        open_kind(builder.folder, tmp_path, password=None).databases()
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_a_device_still_backing_up_does_not_hold_back_the_others(tmp_path, phone):
    build(tmp_path / "Backup" / "aaaa", {SMS: phone[SMS]})
    busy = build(tmp_path / "Backup" / "bbbb", {SMS: phone[SMS]}, device_name="Bob's iPhone", seed=5)
    busy.state = "new"
    busy.write()
    assert [db.name for db in open_kind(tmp_path / "Backup", tmp_path, password=None).databases()] == \
        ["anns-iphone.imessage"]


def test_reading_leaves_the_backup_folder_untouched(tmp_path, phone):
    """Names, sizes, modification and access times: listing and opening every database changes none.
    (A plain backup's databases are read by the pipeline's snapshot, whose own no-atime reads the
    end-to-end tests cover.)"""
    for password in (None, PASSWORD):
        folder = build(tmp_path / f"backup-{bool(password)}", phone, password=password).folder
        age_access_times(folder)
        before = folder_state(folder)
        for attempt in range(2):
            kind = IOSBackup(folder, SourceOptions(password_file=password_file(tmp_path)),
                             _private(tmp_path / f"work-{bool(password)}-{attempt}"))
            for db in kind.databases():
                kind.materialise(db)
            kind.close()
        assert folder_state(folder) == before


def _private(folder: Path) -> Path:
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


# -- encrypted backups --------------------------------------------------------------------------

def test_an_encrypted_backup_decrypts_each_database_into_the_private_workdir(tmp_path, phone):
    folder = build(tmp_path / "backup", phone, password=PASSWORD).folder
    kind = open_kind(folder, tmp_path)
    dbs = kind.databases()
    assert {db.name for db in dbs} == EXPECTED_NAMES
    work = tmp_path / "work"
    for n, db in enumerate(dbs):
        assert db.path is None and not db.companions
        plain = kind.materialise(db)
        assert plain.is_relative_to(work)
        assert_same_database(expected_file(phone, place_of(db), tmp_path / "expected"),
                             readable(kind, db, tmp_path / f"read{n}"))
    for path in work.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {mode:o}"
    kind.close()
    assert not any(work.rglob("db.sqlite*")), "close removes the decrypted databases"


def test_an_independent_decryptor_opens_the_encrypted_test_backup(tmp_path, phone):
    """iphone-backup-decrypt (MIT) reads what the test encoder writes: the encoder follows the format."""
    from iphone_backup_decrypt import EncryptedBackup

    folder = build(tmp_path / "backup", phone, password=PASSWORD).folder
    backup = EncryptedBackup(backup_directory=str(folder), passphrase=PASSWORD)
    assert backup.extract_file_as_bytes(SMS[1], domain_like=SMS[0]) == phone[SMS]
    assert backup.extract_file_as_bytes(WHATSAPP[1], domain_like=WHATSAPP[0]) == phone[WHATSAPP]
    mm = wechat_path("wxid_ann", "MM")
    assert backup.extract_file_as_bytes(mm[1], domain_like=mm[0]) == phone[mm]


class Spy:
    """Counts calls to a function of the plugin, passing them on."""

    def __init__(self, monkeypatch, module, name):
        self.calls, real = 0, getattr(module, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def test_the_password_is_derived_once_and_unchanged_databases_are_not_decrypted(tmp_path, phone, monkeypatch):
    builder = build(tmp_path / "backup", phone, password=PASSWORD)
    derive = Spy(monkeypatch, backup_module, "class_keys")
    decrypt = Spy(monkeypatch, backup_module, "decrypt_file")
    import syncd_ios_backup.manifest as manifest_module
    decrypt_list = Spy(monkeypatch, manifest_module, "decrypt_file")

    kind = open_kind(builder.folder, tmp_path)
    first = {db.name: db.signature for db in kind.databases()}
    for db in kind.databases():
        kind.materialise(db)
    assert (derive.calls, decrypt_list.calls) == (1, 1)
    assert decrypt.calls == len(EXPECTED_NAMES) + 1  # each database, and WhatsApp's -wal

    # Another pass of the same daemon, and a new process over the same state: nothing decrypted.
    again = open_kind(builder.folder, tmp_path)
    assert {db.name: db.signature for db in kind.databases()} == first
    assert {db.name: db.signature for db in again.databases()} == first
    assert (derive.calls, decrypt_list.calls, decrypt.calls) == (1, 1, len(EXPECTED_NAMES) + 1)

    # The phone got a new message: only iMessage's record (and so its signature) changed.
    newer = edited(phone[SMS], tmp_path / "newer-sms.db", "changed on the phone")
    builder.put(SMS, newer.read_bytes())
    builder.write()
    now = {db.name: db.signature for db in kind.databases()}
    assert {name for name in now if now[name] != first[name]} == {"anns-iphone.imessage"}
    changed = next(db for db in kind.databases() if db.name == "anns-iphone.imessage")
    assert_same_database(newer, readable(kind, changed, tmp_path / "changed"))
    assert (derive.calls, decrypt_list.calls) == (1, 2), "the daemon's kind object derives the password once"


def test_a_wrong_password_is_one_line_exit_2_without_the_password(tmp_path, phone):
    folder = build(tmp_path / "backup", phone, password=PASSWORD).folder
    kind = open_kind(folder, tmp_path, password="not the password")
    with pytest.raises(KeyProblem, match="password is wrong") as caught:
        kind.databases()
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    assert "not the password" not in f"{caught.value} {caught.value.hint}"
    assert not any((tmp_path / "work").rglob("Manifest.db")), "nothing decrypted with a wrong key is kept"


def test_an_encrypted_backup_without_a_password_file_says_so(tmp_path, phone):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}, password=PASSWORD).folder
    with pytest.raises(KeyProblem, match="encrypted and needs its password"):
        open_kind(folder, tmp_path, password=None).databases()


# -- hostile and damaged backups ----------------------------------------------------------------

def _rewrite_manifest(folder: Path, sql: str, *args) -> None:
    db = apsw.Connection(str(folder / "Manifest.db"))
    with db:
        db.execute(sql, args)
    db.close()


def test_a_row_whose_file_id_is_not_its_hash_is_refused(tmp_path, phone):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}).folder
    _rewrite_manifest(folder, "UPDATE Files SET fileID = '../../../../etc/passwd' WHERE relativePath = ?", SMS[1])
    with pytest.raises(SourceError, match="not its hash"):
        open_kind(folder, tmp_path, password=None).databases()


def test_a_stored_file_that_is_a_symlink_is_refused(tmp_path, phone):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}).folder
    fid = file_id(*SMS)
    secret = tmp_path / "elsewhere.db"
    secret.write_bytes(phone[SMS])
    (folder / fid[:2] / fid).unlink()
    (folder / fid[:2] / fid).symlink_to(secret)
    with pytest.raises(SourceError, match="not a plain file"):
        open_kind(folder, tmp_path, password=None).databases()


@pytest.mark.parametrize("blob", [b"not a plist", b"bplist00" + bytes(40), b"x" * 70_000])
def test_a_damaged_file_record_is_refused(tmp_path, phone, blob):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}).folder
    _rewrite_manifest(folder, "UPDATE Files SET file = ? WHERE relativePath = ?", blob, SMS[1])
    with pytest.raises(SourceError, match="damaged"):
        open_kind(folder, tmp_path, password=None).databases()


def test_a_manifest_that_is_not_a_database_is_refused(tmp_path, phone):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}).folder
    (folder / "Manifest.db").write_bytes(os.urandom(8192))
    with pytest.raises(SourceError, match="Manifest.db"):
        open_kind(folder, tmp_path, password=None).databases()


def test_a_truncated_encrypted_file_is_refused_and_nothing_half_written_stays(tmp_path, phone):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}, password=PASSWORD).folder
    stored = folder / file_id(*SMS)[:2] / file_id(*SMS)
    stored.write_bytes(stored.read_bytes()[:-32])
    kind = open_kind(folder, tmp_path)
    db, = kind.databases()
    with pytest.raises(SourceError, match="not the .* its record"):
        kind.materialise(db)
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file() and "sqlite" in p.name]


@pytest.mark.parametrize("damage", ["truncated", "rounds", "no classes"])
def test_a_damaged_keybag_is_refused_before_any_work(tmp_path, phone, damage):
    import plistlib

    from ios_backup_builder import tlv

    folder = build(tmp_path / "backup", {SMS: phone[SMS]}, password=PASSWORD).folder
    manifest = plistlib.loads((folder / "Manifest.plist").read_bytes())
    bag = manifest["BackupKeyBag"]
    if damage == "truncated":
        bag = bag[:-7]
    elif damage == "rounds":  # billions of rounds would hold the CPU for days
        bag = bag.replace(tlv(b"DPIC", 10), tlv(b"DPIC", 4_000_000_000))
    else:
        bag = bag[:bag.index(b"UUID", bag.index(b"UUID") + 4)]  # the bag without its classes
    manifest["BackupKeyBag"] = bag
    (folder / "Manifest.plist").write_bytes(plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))
    with pytest.raises(SourceError, match="keybag") as caught:
        open_kind(folder, tmp_path).databases()
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("name", ["Status.plist", "Info.plist", "Manifest.plist"])
@pytest.mark.parametrize("text", [b"<?xml version='1.0'?><plist><dict><key>a</key>",
                                  b"<plist><dict><key>a</key><date>not a date</date></dict></plist>"])
def test_a_damaged_xml_plist_is_one_line_not_a_traceback(tmp_path, phone, name, text):
    folder = build(tmp_path / "backup", {SMS: phone[SMS]}).folder
    (folder / name).write_bytes(text)
    with pytest.raises(SourceError, match="not a readable property list") as caught:
        open_kind(folder, tmp_path, password=None).databases()
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["Status.plist", "Info.plist", "Manifest.db-wal"])
@pytest.mark.parametrize("what", ["folder", "fifo"])
def test_a_backup_file_that_is_a_folder_or_fifo_is_refused_not_waited_on(tmp_path, phone, name, what):
    import signal

    folder = build(tmp_path / "backup", {SMS: phone[SMS]}).folder
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name) if what == "fifo" else (folder / name).mkdir()

    def hung(*_):
        raise AssertionError(f"opening the {what} {name} waited for a writer")

    before = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(SourceError, match="not a plain file") as caught:
            open_kind(folder, tmp_path, password=None).databases()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
