"""The ios-backup kind passes the source seam's conformance suite (syncd.testing), encrypted."""

from __future__ import annotations

import pytest

from conftest import SHARED_FIXTURES
from ios_backup_builder import SMS, WHATSAPP, BackupBuilder
from syncd.source import SourceOptions
from syncd.testing.source_contract import SourceKindContract
from syncd_ios_backup import IOSBackup

PASSWORD = "contract password"


class TestIOSBackupContract(SourceKindContract):
    @pytest.fixture
    def kind(self):
        return IOSBackup

    @pytest.fixture
    def builder(self, tmp_path):
        if not SHARED_FIXTURES.exists():
            pytest.skip("the shared fixtures folder is not beside the project")
        builder = BackupBuilder(tmp_path / "Backup" / "device", password=PASSWORD)
        builder.put(SMS, (SHARED_FIXTURES / "imessage-macos-chat.db").read_bytes())
        builder.put(WHATSAPP, (SHARED_FIXTURES / "whatsapp-ios-ChatStorage.sqlite").read_bytes())
        builder.write()
        return builder

    @pytest.fixture
    def source_path(self, builder):
        return builder.folder

    def _password_file(self, tmp_path, text):
        path = tmp_path / f"password-{len(text)}"
        path.write_text(text + "\n")
        path.chmod(0o600)
        return path

    @pytest.fixture
    def options(self, tmp_path):
        return SourceOptions(password_file=self._password_file(tmp_path, PASSWORD))

    @pytest.fixture
    def wrong_options(self, tmp_path):
        return SourceOptions(password_file=self._password_file(tmp_path, "not the backup password"))

    @pytest.fixture
    def secret(self):
        return PASSWORD

    @pytest.fixture
    def change_source(self, builder):
        def change():
            builder.put(SMS, (SHARED_FIXTURES / "imessage-macos-chat.db").read_bytes() + bytes(4096))
            builder.write()
        return change
