"""Encrypted targets: nothing readable there, every change caught, keys handled with care.

The tests use a WeChat-like database named like the real one, sync a few
versions to a folder target encrypted with age, then read, damage and restore
that target the ways a storage provider or a thief could.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import apsw
import pytest
from pyrage import passphrase
from test_bad_input import cli, error_lines
from test_faults import TornManifest

from conftest import Harness
from logical import logical_state
from syncd.archive import plain as archive_module
from syncd.archive import crypto
from syncd.errors import CorruptObject, KeyProblem, TransientError
from syncd.plugins import open_backend
from syncd.readback.restore import open_archive, restore
from syncd.archive.sealed import SealedArchive, open_sealed
from syncd.delivery.target import Target
from syncd.readback.verify import verify

SOURCE = "EnMicroMsg.db"
SECRETS = ["今晚七点在老地方见，别告诉任何人", "the spare key is under the blue flowerpot", "wxid_k8s2alice",
           "wxid_b0bsecret", "家庭群聊天记录", "Project Nightingale chat", "message", "rcontact", SOURCE, "EnMicroMsg"]
SCHEMA = """
CREATE TABLE rcontact(username TEXT PRIMARY KEY, nickname TEXT, type INT);
CREATE TABLE message(msgId INTEGER PRIMARY KEY, talker TEXT, content TEXT, createTime INTEGER);
INSERT INTO rcontact VALUES ('wxid_k8s2alice', 'Alice', 3), ('wxid_b0bsecret', 'Bob', 3),
                            ('4242@chatroom', '家庭群聊天记录', 2), ('5151@chatroom', 'Project Nightingale chat', 2);
INSERT INTO message VALUES (1, 'wxid_k8s2alice', '今晚七点在老地方见，别告诉任何人', 1700000000000);
"""
CHANGES = [
    "INSERT INTO message VALUES (2, 'wxid_b0bsecret', 'the spare key is under the blue flowerpot', 1700000001000)",
    "UPDATE message SET content = '\"Alice\" 撤回了一条消息' WHERE msgId = 1",
    "ALTER TABLE message ADD COLUMN flag INT;"
    "INSERT INTO message VALUES (3, '4242@chatroom', '晚安', 1700000002000, 1)",
]
age_cli = pytest.mark.skipif(shutil.which("age") is None,
                             reason="the stock `age` tool is not installed (.ci/run installs it: apt-get install age)")


class Keys:
    """The owner's identity, a recovery identity (second recipient), and a stranger's."""

    def __init__(self, folder: Path):
        folder.mkdir()
        self.owner, self.recovery, self.stranger = (folder / n for n in ("owner.txt", "recovery.txt", "stranger.txt"))
        self.recipients = (crypto.keygen(self.owner), crypto.keygen(self.recovery))
        crypto.keygen(self.stranger)


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path / "keys")


@pytest.fixture
def sealed(tmp_path, pm, keys):
    """A phone synced four times to an encrypted folder target (and nothing else)."""
    phone = Harness(tmp_path, pm, db_name=SOURCE)
    phone.to = [Target(str(phone.target), keys.recipients)]
    phone.execute(SCHEMA)
    phone.sync(phone.to)
    for sql in CHANGES:
        phone.execute(sql)
        assert phone.sync(phone.to).version is not None
    return phone


def folder_of(phone) -> Path:
    (folder,) = [p for p in phone.target.iterdir() if p.name != "_syncd"]  # _syncd: see syncd.archive.claims
    return folder


def objects_of(phone) -> list[Path]:
    return sorted((folder_of(phone) / "objects").iterdir())


def check(phone, keys, *, deep: bool = True, state: bool = False):
    backend = open_backend(phone.pm, str(phone.target))
    identities = crypto.load_identities(keys.owner) if deep else ()
    (result,) = verify(backend, identities=identities, state_dir=phone.state if state else None)
    return result


def problems(phone, keys, **kwargs) -> str:
    return "\n".join(check(phone, keys, **kwargs).problems)


def restore_all(phone, identity: Path, root: Path) -> None:
    """Every version, from the target alone, through the CLI, as on a fresh machine."""
    for number, expected in phone.expected.items():
        out = root / f"restored-{number}.db"
        result = cli("restore", "--from", phone.target, "--identity", identity, "--version", number, out)
        assert result.exit_code == 0, result.stderr
        assert logical_state(out) == expected, f"version {number} differs"


# -- nothing readable ----------------------------------------------------------------


def everything_under(folder: Path) -> bytes:
    """Every file's path and bytes below `folder`, as one blob to search."""
    return b"\n".join(p.relative_to(folder).as_posix().encode() + b"\0" + (p.read_bytes() if p.is_file() else b"")
                      for p in sorted(folder.rglob("*")))


def visible(blob: bytes) -> list[str]:
    lowered = blob.lower()
    return [s for s in SECRETS if s.lower().encode() in lowered or s.encode("utf-16-le") in blob]


def test_nothing_on_an_encrypted_target_reveals_messages_contacts_tables_or_the_source(sealed, tmp_path):
    assert visible(everything_under(sealed.target)) == []
    # The scan can see: the same history synced in the clear shows them.
    clear = tmp_path / "clear"
    clear.mkdir()
    sealed.sync([str(clear)])
    assert {"message", SOURCE, SECRETS[0]} <= set(visible(everything_under(clear)))


def test_objects_are_named_only_by_number_kind_and_hash(sealed):
    folder = folder_of(sealed)
    # As docs/format.md derives it, so a person can find their folder by hand.
    parts = b"".join(b"\0" + p.encode() for p in [SOURCE, *sorted(sealed.to[0].encrypt_to)])
    assert folder.name == hashlib.sha256(b"syncd folder id v1" + parts).hexdigest()[:32]
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.age", "objects"]
    for obj in objects_of(sealed):
        number, kind, digest = obj.name.removesuffix(".zst.age").split("-")
        assert number.isdigit() and kind in ("base", "delta")
        assert hashlib.sha256(obj.read_bytes()).hexdigest().startswith(digest)


# -- restore -------------------------------------------------------------------------


def test_restore_on_a_fresh_machine_needs_only_the_target_and_an_identity(sealed, keys, tmp_path):
    shutil.rmtree(sealed.state)
    restore_all(sealed, keys.owner, tmp_path)
    (tmp_path / "again").mkdir()
    restore_all(sealed, keys.recovery, tmp_path / "again")  # the second recipient: a recovery key
    result = cli("log", "--from", sealed.target, "--identity", keys.recovery)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == len(sealed.expected)


def test_restore_without_the_right_identity_fails_cleanly(sealed, keys, tmp_path):
    out = tmp_path / "out.db"
    for extra, says in (([], "no identity was given"), (["--identity", keys.stranger], "opens with the identity")):
        result = cli("restore", "--from", sealed.target, *extra, out)
        assert result.exit_code == 2 and says in error_lines(result.stderr, hint=True)[0]
        assert not out.exists()


def test_a_restore_never_returns_wrong_data_and_names_the_damaged_object(sealed, keys, tmp_path):
    victim = objects_of(sealed)[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    archive = open_archive(open_backend(sealed.pm, str(sealed.target)), None, crypto.load_identities(keys.owner))
    with pytest.raises(CorruptObject, match=victim.name):
        restore(archive, tmp_path / "out.db", number=2)  # from the base of version 1
    assert not (tmp_path / "out.db").exists()


# -- integrity -----------------------------------------------------------------------


def test_an_untouched_target_verifies_inside_and_out(sealed, keys):
    for deep in (True, False):
        for state in (True, False):
            assert check(sealed, keys, deep=deep, state=state).problems == []
    assert check(sealed, keys).source == SOURCE


def test_a_modified_byte_is_caught(sealed, keys):
    victim = objects_of(sealed)[-1]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x80
    victim.write_bytes(bytes(data))
    for deep in (True, False):
        assert victim.name in problems(sealed, keys, deep=deep)


def test_a_deleted_object_is_caught(sealed, keys):
    victim = objects_of(sealed)[1]
    victim.unlink()
    assert f"{victim.name} is missing" in problems(sealed, keys)
    # From outside, only the local state knows what should be there.
    assert f"{victim.name} is missing" in problems(sealed, keys, deep=False, state=True)


def test_reordered_objects_are_caught(sealed, keys):
    first, second = objects_of(sealed)[1:3]
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    for deep in (True, False):
        found = problems(sealed, keys, deep=deep)
        assert first.name in found and second.name in found


def test_a_foreign_object_is_caught(sealed, keys, tmp_path, pm):
    """An object of another archive (another source, same keys) put in place of one of ours."""
    ours = objects_of(sealed)[0]
    (tmp_path / "other").mkdir()
    other = Harness(tmp_path / "other", pm, db_name="msgstore.db")
    other.execute(SCHEMA)
    other.sync([Target(str(sealed.target), keys.recipients)])
    theirs = next(p for p in sealed.target.rglob("0000000001-base-*") if p != ours)
    ours.write_bytes(theirs.read_bytes())
    for deep in (True, False):
        assert ours.name in "\n".join(c for c in _all_problems(sealed, keys, deep))


def test_a_foreign_manifest_is_caught(sealed, keys, tmp_path, pm):
    """Another archive's (valid, encrypted) manifest put in place of ours."""
    (tmp_path / "other").mkdir()
    other = Harness(tmp_path / "other", pm, db_name=SOURCE)
    other.execute(SCHEMA)
    other.sync([Target(str(other.target), keys.recipients)])
    (folder_of(sealed) / "manifest.age").write_bytes((folder_of(other) / "manifest.age").read_bytes())
    assert "is missing" in problems(sealed, keys)  # it names objects this folder doesn't hold
    assert "not the manifest this machine wrote" in problems(sealed, keys, deep=False, state=True)


def test_a_torn_read_of_the_encrypted_manifest_is_read_again(sealed, keys, monkeypatch):
    monkeypatch.setattr(archive_module, "MANIFEST_GAP_WAIT", 0.01)
    torn = TornManifest(open_backend(sealed.pm, str(sealed.target)), torn=1)
    archive = SealedArchive(torn, folder_of(sealed).name, identities=crypto.load_identities(keys.owner))
    assert archive.manifest().head.number == len(sealed.expected)
    assert torn.torn == 0


def test_a_damaged_archive_does_not_block_restoring_another_source(sealed, keys, tmp_path, pm, monkeypatch):
    monkeypatch.setattr(archive_module, "MANIFEST_GAP_WAIT", 0.01)
    mine = folder_of(sealed)
    (tmp_path / "other").mkdir()
    other = Harness(tmp_path / "other", pm, db_name="other.db")
    other.execute(SCHEMA)
    other.sync([Target(str(sealed.target), keys.recipients)])
    (mine / "manifest.age").write_bytes(b"not age")
    backend = open_backend(pm, str(sealed.target))
    identities = crypto.load_identities(keys.owner)
    assert open_sealed(backend, identities, "other.db").manifest().source == "other.db"
    with pytest.raises(CorruptObject, match="manifest.age"):
        open_sealed(backend, identities, SOURCE)


def test_a_rollback_is_caught_with_the_local_state(sealed, keys):
    manifest = folder_of(sealed) / "manifest.age"
    old = manifest.read_bytes()
    sealed.execute("INSERT INTO message VALUES (9, 'wxid_k8s2alice', 'later', 1700000009000, 0)")
    newest = sealed.sync(sealed.to).version.number
    manifest.write_bytes(old)  # the provider serves yesterday's manifest
    assert "rolled back" in problems(sealed, keys, deep=False, state=True)
    assert f"holds version {newest - 1}, but version {newest} was delivered" in problems(sealed, keys, state=True)
    # And the next sync refuses to build on it.
    sealed.execute("INSERT INTO message VALUES (10, 'wxid_k8s2alice', 'even later', 1700000010000, 0)")
    report = sealed.sync(sealed.to)
    assert not report.ok and "replaced or rolled back" in report.targets[0].error


def _all_problems(phone, keys, deep: bool) -> list[str]:
    backend = open_backend(phone.pm, str(phone.target))
    identities = crypto.load_identities(keys.owner) if deep else ()
    return [p for c in verify(backend, identities=identities) for p in c.problems]


# -- delivery ------------------------------------------------------------------------


def test_a_wiped_target_is_reported_not_silently_refilled(sealed):
    shutil.rmtree(folder_of(sealed))
    sealed.execute("INSERT INTO message VALUES (9, 'wxid_k8s2alice', 'later', 1700000009000, 0)")
    report = sealed.sync(sealed.to)
    assert report.version and not report.ok
    assert "no longer holds the encrypted archive" in report.targets[0].error


def test_a_pass_stopped_after_the_remote_manifest_write_carries_on(sealed, keys, monkeypatch):
    sealed.execute("INSERT INTO message VALUES (9, 'wxid_k8s2alice', 'later', 1700000009000, 0)")

    def power_cut(*args):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("syncd.archive.state.SourceState.settle_sealed", power_cut)
    with pytest.raises(KeyboardInterrupt):
        sealed.sync(sealed.to)
    monkeypatch.undo()
    sealed.execute("INSERT INTO message VALUES (10, 'wxid_k8s2alice', 'even later', 1700000010000, 0)")
    report = sealed.sync(sealed.to)
    assert report.ok, report.targets[0].error
    restore_all(sealed, keys.owner, sealed.root)


def test_one_pass_delivers_plain_and_encrypted_targets_side_by_side(sealed, keys, tmp_path):
    clear = tmp_path / "clear"
    clear.mkdir()
    report = sealed.sync([str(clear), *sealed.to])
    assert report.ok and [t.version for t in report.targets] == [len(sealed.expected)] * 2
    sealed.check_all_versions(clear)


# -- keys and their errors -----------------------------------------------------------


def test_keygen_writes_a_private_identity_and_prints_only_its_recipient(tmp_path):
    out = tmp_path / "id.txt"
    result = cli("keygen", "--out", out)
    assert result.exit_code == 0
    assert result.stdout.startswith("age1") and len(result.stdout.splitlines()) == 1
    assert "AGE-SECRET-KEY" not in result.output
    assert (out.stat().st_mode & 0o777) == 0o600
    assert str(crypto.load_identities(out)[0].to_public()) == result.stdout.strip()
    before = out.read_bytes()
    again = cli("keygen", "--out", out)
    assert again.exit_code == 2 and "already exists" in error_lines(again.stderr, hint=True)[0]
    assert out.read_bytes() == before


def secret_of(identity: Path) -> str:
    return next(line for line in identity.read_text().splitlines() if line.startswith("AGE-SECRET-KEY"))


@pytest.mark.parametrize("case", ["bad recipient", "secret as recipient", "loose permissions", "damaged identity",
                                  "wrong passphrase", "no passphrase file"])
def test_key_problems_are_one_clean_line_and_never_show_a_key(sealed, keys, tmp_path, case):
    identity, env = keys.owner, {}
    command = ["restore", "--from", sealed.target, "--identity", identity, tmp_path / "out.db"]
    if case == "bad recipient":
        command = ["sync", sealed.source, "--to", sealed.target, "--state", sealed.state,
                   "--encrypt-to", keys.recipients[0], "--encrypt-to", "age1notarecipient"]
    elif case == "secret as recipient":
        command = ["sync", sealed.source, "--to", sealed.target, "--state", sealed.state,
                   "--encrypt-to", secret_of(keys.owner)]
    elif case == "loose permissions":
        identity.chmod(0o644)
    elif case == "damaged identity":
        identity.write_text(secret_of(keys.owner)[:-5] + "\n")
    else:
        protected = tmp_path / "protected.age"
        protected.write_bytes(passphrase.encrypt(keys.owner.read_bytes(), "correct horse"))
        protected.chmod(0o600)
        command[4] = protected
        if case == "wrong passphrase":
            (tmp_path / "pass").write_text("battery staple\n")
            (tmp_path / "pass").chmod(0o600)
            env = {crypto.PASSPHRASE_FILE_ENV: str(tmp_path / "pass")}
        else:
            env = {crypto.PASSPHRASE_FILE_ENV: str(tmp_path / "nowhere")}
    result = cli(*command, env=env)
    assert result.exit_code == 2, result.output
    error_lines(result.stderr, hint=True)
    assert "AGE-SECRET-KEY" not in result.output and "age1notarecipient" not in result.output
    assert not (tmp_path / "out.db").exists()


def test_a_passphrase_protected_identity_restores(sealed, keys, tmp_path):
    protected = tmp_path / "protected.age"
    protected.write_bytes(passphrase.encrypt(keys.owner.read_bytes(), "correct horse"))
    protected.chmod(0o600)
    secret = tmp_path / "pass"
    secret.write_text("correct horse\n")
    secret.chmod(0o600)
    out = tmp_path / "out.db"
    result = cli("restore", "--from", sealed.target, "--identity", protected, out,
                 env={crypto.PASSPHRASE_FILE_ENV: str(secret)})
    assert result.exit_code == 0, result.stderr
    assert logical_state(out) == sealed.expected[max(sealed.expected)]


def test_a_bad_recipient_is_refused_before_anything_is_archived(sealed, keys):
    with pytest.raises(KeyProblem, match="recipient #2"):
        Target(str(sealed.target), (keys.recipients[0], "age1xyz"))


# -- the stock age tool --------------------------------------------------------------


@age_cli
def test_the_stock_age_tool_opens_every_object_into_the_local_zstd_bytes(sealed, keys, tmp_path):
    local = {hashlib.sha256(p.read_bytes()).hexdigest(): p.read_bytes()
             for p in (sealed.state / "sources" / SOURCE / "archive" / SOURCE / "objects").iterdir()}
    objects = objects_of(sealed)
    assert len(objects) == len(local)
    for obj in objects:
        plain = subprocess.run(["age", "-d", "-i", str(keys.recovery), str(obj)], capture_output=True,
                               check=True).stdout
        assert hashlib.sha256(plain).hexdigest() in local, f"{obj.name} opens to bytes syncd didn't write"
    manifest = subprocess.run(["age", "-d", "-i", str(keys.owner), str(folder_of(sealed) / "manifest.age")],
                              capture_output=True, check=True).stdout
    assert SOURCE.encode() in manifest and os.path.basename(str(objects[0])).encode() in manifest


def test_a_rollback_of_a_plain_target_is_caught_with_the_local_state(sealed, tmp_path):
    clear = tmp_path / "clear"
    clear.mkdir()
    sealed.sync([str(clear)])
    manifest = clear / SOURCE / "manifest.json"
    old = manifest.read_bytes()
    sealed.execute("INSERT INTO message VALUES (9, 'wxid_k8s2alice', 'later', 1700000009000, 0)")
    sealed.sync([str(clear)])
    manifest.write_bytes(old)
    (result,) = verify(open_backend(sealed.pm, str(clear)), state_dir=sealed.state)
    assert any("rolled back" in p for p in result.problems)
    (result,) = verify(open_backend(sealed.pm, str(clear)))
    assert result.problems == []  # without the state, an older archive is a valid archive


def test_objects_a_failed_pass_uploaded_are_not_sent_again(sealed, keys, monkeypatch):
    sealed.execute("INSERT INTO message VALUES (9, 'wxid_k8s2alice', 'later', 1700000009000, 0)")
    before = set(objects_of(sealed))

    def connection_reset(*args):
        raise TransientError("connection reset")

    monkeypatch.setattr("syncd.archive.sealed.SealedArchive.write_sealed_manifest", connection_reset)
    assert not sealed.sync(sealed.to).ok
    monkeypatch.undo()
    uploaded = set(objects_of(sealed)) - before
    assert uploaded
    report = sealed.sync(sealed.to)
    assert report.ok and set(objects_of(sealed)) - before == uploaded
    assert check(sealed, keys, state=True).problems == [] and check(sealed, keys).unreferenced == []


def test_the_cli_encrypts_every_target_of_the_command(tmp_path, keys):
    phone = tmp_path / SOURCE
    db = apsw.Connection(str(phone))
    db.execute(SCHEMA)
    db.close()
    nas, usb = tmp_path / "nas", tmp_path / "usb"
    nas.mkdir(), usb.mkdir()
    result = cli("sync", phone, "--to", nas, "--to", usb, "--state", tmp_path / "state",
                 "--encrypt-to", keys.recipients[0], "--encrypt-to", keys.recipients[1])
    assert result.exit_code == 0, result.stderr
    for target in (nas, usb):
        assert [p.name for p in target.rglob("*") if p.is_file() and not p.name.endswith(".age")
                and "_syncd" not in p.parts] == []  # _syncd: fingerprints and writer ids, see test_delivery_trust
        assert visible(everything_under(target)) == []
        assert cli("log", "--from", target, "--identity", keys.recovery).stdout.count("\n") == 1
