"""Local first: a version is persisted before any upload, survives crashes, and reaches every target."""

from __future__ import annotations

import shutil

import pytest
from logical import logical_state

from syncd import sync as sync_module
from syncd.errors import TransientError
from syncd.mirror.mirror import Mirror
from syncd.readback.verify import verify
from syncd_folder import FolderBackend

SCHEMA = "CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'hello')"


@pytest.fixture
def phone(harness):
    harness.execute(SCHEMA)
    return harness


def add_message(phone, n: int) -> None:
    phone.execute("INSERT INTO message VALUES (?, ?)", n, f"message {n}")


def test_missing_target_gets_the_queued_version_on_the_next_pass(phone):
    later = phone.root / "later"
    report = phone.sync([str(phone.target), str(later)])
    assert report.version.number == 1
    assert [t.ok for t in report.targets] == [True, False]
    assert "does not exist" in report.targets[1].error
    later.mkdir()
    report = phone.sync([str(phone.target), str(later)])  # nothing changed on the phone
    assert report.version is None and report.ok
    assert report.targets[1].version == 1 and report.targets[1].bytes > 0
    assert report.targets[0].bytes == 0, "an up-to-date target was written to again"
    phone.check_all_versions(later)


@pytest.mark.parametrize("step", ["mirror commit", "manifest write"])
def test_crash_mid_version_loses_nothing(phone, monkeypatch, step):
    """Before the local manifest names a version it doesn't exist; the next pass makes it again."""
    phone.sync()
    add_message(phone, 2)
    where = (Mirror, "commit") if step == "mirror commit" else (sync_module.Archive, "write_manifest")

    def power_cut(*args):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(*where, power_cut)
    with pytest.raises(KeyboardInterrupt):
        phone.sync()
    monkeypatch.undo()
    assert phone.archive().manifest().head.number == 1
    report = phone.sync()
    assert report.version.number == 2 and report.targets[0].version == 2
    add_message(phone, 3)
    assert phone.sync().version.number == 3
    phone.check_all_versions()


def test_interrupted_upload_leaves_the_target_at_its_previous_version(phone, monkeypatch):
    phone.sync()
    add_message(phone, 2)
    real_write = FolderBackend.write

    def fail_on_manifest(self, name, data):
        if name.endswith("manifest.json") and "state" not in str(self.root):
            raise TransientError(f"{self.location}: connection reset")
        return real_write(self, name, data)

    monkeypatch.setattr(FolderBackend, "write", fail_on_manifest)
    report = phone.sync()
    assert report.version.number == 2 and not report.ok
    # The target got the new objects but not the manifest: it still reads as version 1.
    assert phone.archive().manifest().head.number == 1
    assert all(not c.problems for c in verify(FolderBackend(phone.target)))
    phone.expected.pop(2)
    phone.check_all_versions()
    monkeypatch.undo()
    report = phone.sync()
    assert report.ok and report.targets[0].version == 2


def test_lost_mirror_is_rebuilt_from_the_local_archive(phone):
    phone.sync()
    add_message(phone, 2)
    phone.sync()
    (phone.state / "sources" / "chat.db" / "mirror.db").unlink()
    assert phone.sync().version is None  # rebuilt, and nothing new on the phone
    add_message(phone, 3)
    assert phone.sync().version.number == 3
    phone.check_all_versions()


def test_unmounted_share_is_not_mistaken_for_an_empty_target(phone):
    phone.sync()
    shutil.rmtree(phone.target)
    phone.target.mkdir()  # what an unmounted mount point looks like
    add_message(phone, 2)
    report = phone.sync()
    assert not report.ok and "no longer holds" in report.targets[0].error
    assert "mounted" in report.targets[0].hint
    assert list(phone.target.iterdir()) == []


def test_restores_read_a_bounded_number_of_objects(phone, monkeypatch):
    monkeypatch.setattr(sync_module, "BASE_MAX_CHAIN", 4)
    phone.sync()
    for n in range(2, 15):
        add_message(phone, n)
        phone.sync()
    manifest = phone.archive().manifest()
    assert [v.number for v in manifest.versions if v.base] == [1, 5, 9, 13]
    assert max(len(manifest.restore_plan(v.number)) for v in manifest.versions) <= 4
    assert all(not c.problems for c in verify(FolderBackend(phone.target)))
    phone.check_all_versions()


def test_damaged_mirror_is_rebuilt_from_the_local_archive(phone):
    phone.sync()
    mirror = phone.state / "sources" / "chat.db" / "mirror.db"
    mirror.write_bytes(b"not a database at all" * 100)
    add_message(phone, 2)
    assert phone.sync().version.number == 2
    phone.check_all_versions()
