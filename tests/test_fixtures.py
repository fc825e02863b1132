"""Real chat databases (../shared/fixtures) round-trip through their apps' typical changes."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from conftest import SHARED_FIXTURES

WHATSAPP = SHARED_FIXTURES / "whatsapp-ios-ChatStorage.sqlite"
IMESSAGE = SHARED_FIXTURES / "imessage-macos-chat.db"

# WhatsApp for iOS is Core Data: Z_PK from Z_PRIMARYKEY.Z_MAX, Z_OPT bumped on every save.
WHATSAPP_CHANGES = [
    # a new message arrives in chat 5, and the chat's counters follow
    "INSERT INTO ZWAMESSAGE(Z_PK, Z_ENT, Z_OPT, ZCHATSESSION, ZISFROMME, ZMESSAGESTATUS, ZMESSAGETYPE, ZSORT,"
    " ZMESSAGEDATE, ZFROMJID, ZSTANZAID, ZTEXT)"
    " SELECT Z_MAX + 1, 9, 1, 5, 0, 6, 0, Z_MAX + 1, 690000000.5, '19198887386@s.whatsapp.net',"
    " '3EB0C767D2F0ABCD', 'Are we still on for tonight? 🍕' FROM Z_PRIMARYKEY WHERE Z_NAME = 'WAMessage';"
    "UPDATE Z_PRIMARYKEY SET Z_MAX = Z_MAX + 1 WHERE Z_NAME = 'WAMessage';"
    "UPDATE ZWACHATSESSION SET ZMESSAGECOUNTER = ZMESSAGECOUNTER + 1, ZUNREADCOUNT = 1, Z_OPT = Z_OPT + 1,"
    " ZLASTMESSAGE = (SELECT max(Z_PK) FROM ZWAMESSAGE), ZLASTMESSAGETEXT = 'Are we still on for tonight? 🍕'"
    " WHERE Z_PK = 5",
    # read receipts: status churn
    "UPDATE ZWAMESSAGE SET ZMESSAGESTATUS = 8, Z_OPT = Z_OPT + 1 WHERE ZCHATSESSION = 5 AND ZISFROMME = 1",
    # delete for everyone: the row stays, its text goes
    "UPDATE ZWAMESSAGE SET ZTEXT = NULL, ZMESSAGETYPE = 14, Z_OPT = Z_OPT + 1 WHERE Z_PK = 2",
    # a whole chat deleted, then the free pages handed back (auto_vacuum = incremental)
    "DELETE FROM ZWAMESSAGE WHERE ZCHATSESSION = 1; DELETE FROM ZWACHATSESSION WHERE Z_PK = 1;"
    "PRAGMA incremental_vacuum",
]

IMESSAGE_CHANGES = [
    "INSERT INTO message(guid, text, handle_id, service, date, is_from_me)"
    " VALUES ('msg-guid-new-1', 'On my way 🚗', 1, 'iMessage', 771600000000000000, 0);"
    "INSERT INTO chat_message_join VALUES (1, last_insert_rowid(), 771600000000000000)",
    # an edit (iOS 16+): new text, date_edited set, the history kept in a blob
    "UPDATE message SET text = 'Want to grab dinner tomorrow?', date_edited = 771700000000000000,"
    " message_summary_info = x'62706c6973743030' WHERE ROWID = 3",
    "DELETE FROM chat_message_join WHERE message_id = 2; DELETE FROM message WHERE ROWID = 2",
]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fixture, changes", [(WHATSAPP, WHATSAPP_CHANGES), (IMESSAGE, IMESSAGE_CHANGES)],
                         ids=["whatsapp-ios", "imessage"])
def test_real_database_round_trips(harness, fixture, changes):
    if not fixture.exists():
        pytest.skip(f"{fixture} is absent (the shared fixtures folder is not beside the project)")
    before = sha256(fixture)
    harness.source = harness.phone / fixture.name
    shutil.copyfile(fixture, harness.source)
    assert harness.sync().version.number == 1
    for sql in changes:
        harness.execute(sql)
        assert harness.sync().version is not None, sql
    harness.check_all_versions()
    assert sha256(fixture) == before
