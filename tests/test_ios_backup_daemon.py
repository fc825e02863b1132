"""The daemon and an iOS backup folder (issue 12, item 6): a backup finishing is one pass, not thousands of
file events, and an encrypted backup works unattended from its password file."""

from __future__ import annotations

import pytest

from daemon_rig import Rig, wait_for
from ios_backup_builder import SMS, BackupBuilder, edited, phone_files
from test_ios_backup_cli import SHARED_FIXTURES

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def phone(tmp_path_factory) -> dict:
    if not SHARED_FIXTURES.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
    return phone_files(tmp_path_factory.mktemp("apps"), SHARED_FIXTURES)


def backup_rig(tmp_path, phone) -> tuple[Rig, BackupBuilder]:
    rig = Rig(tmp_path, targets=1)
    builder = BackupBuilder(tmp_path / "MobileSync" / "Backup" / "00008110-ann", password=PASSWORD)
    for place, data in phone.items():
        builder.put(place, data)
    builder.write()
    password = tmp_path / "backup.password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    # The whole MobileSync/Backup folder, as Finder keeps it: every device's backups are found in it.
    rig.config.write_text(f'''state_dir = "{rig.state}"
[[source]]
name = "ann"
path = "{builder.folder.parent}"
password_file = "{password}"
[[target]]
url = "{rig.targets[0]}"
[daemon]
''' + "\n".join(f"{key} = {value}" for key, value in rig.settings.items()) + "\n")
    return rig, builder


def local_versions(rig: Rig) -> dict[str, int]:
    sources = rig.state / "sources"
    return {p.name: rig.local(p.name).head.number for p in sources.iterdir()
            if (p / "archive" / p.name / "manifest.json").exists()} if sources.is_dir() else {}


def test_a_backup_is_archived_unattended_and_a_new_backup_is_one_pass(tmp_path, phone):
    rig, builder = backup_rig(tmp_path, phone)
    rig.start()
    try:
        rig.wait_started()
        first = wait_for(lambda: len(local_versions(rig)) == 7 and local_versions(rig),
                         what=lambda: f"every app archived\n{rig.log()}")
        assert set(first.values()) == {1} and "ann.imessage" in first and "ann.whatsapp" in first
        wait_for(lambda: rig.head(rig.targets[0], "ann.imessage") == 1, what=lambda: rig.log())
        # The next backup: iMessage changed; the backup rewrites many files one by one, then its records.
        builder.put(SMS, edited(phone[SMS], tmp_path / "sms.db", "a message from the next backup").read_bytes())
        builder.state = "uploading"
        for n in range(40):
            (builder.folder / "ff").mkdir(exist_ok=True)
            (builder.folder / "ff" / f"{n:040x}").write_bytes(b"x" * 100)  # other apps' files
        builder.write()
        builder.state = "finished"
        builder.write()
        wait_for(lambda: local_versions(rig).get("ann.imessage") == 2, what=lambda: rig.log())
        wait_for(lambda: rig.head(rig.targets[0], "ann.imessage") == 2, what=lambda: rig.log())
        later = local_versions(rig)
        assert later == {**first, "ann.imessage": 2}, "only the changed app gets a version"
        assert rig.log().count("version 2 archived locally") == 1
    finally:
        rig.stop()
    assert "Traceback" not in rig.log() and PASSWORD not in rig.log()
