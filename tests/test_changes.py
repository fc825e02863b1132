"""One reading of versions (syncd.reading.changes) feeding history and search: what each version added,
changed and deleted, a version with a new base read whole, and one status for a message everywhere."""

from __future__ import annotations

import json
import random

import apsw
import pytest

from syncd.app import RECALLED
from conftest import cli, sync_to_folder
from syncd.plugins import open_backend, plugin_manager
from syncd.readback.restore import open_archive, read_manifest
from syncd.reading.changes import walk
from syncd.reading.working_copy import WorkingCopy
from syncd.samples import create_wechat, wechat_new_messages, wechat_recall




@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """v1; v2: an edit, a delete, new messages; v3: a column added to `message` (a new base) and a recall."""
    root = tmp_path_factory.mktemp("changes")
    phone = root / "EnMicroMsg.db"
    create_wechat(phone, messages=200, chats=5, seed=7)

    def sync():
        sync_to_folder(phone, root)

    sync()
    db, rng = apsw.Connection(str(phone)), random.Random(2)
    texts = [i for (i,) in db.execute("SELECT msgId FROM message WHERE type = 1 ORDER BY msgId")]
    edited, deleted, recalled = texts[:3]
    db.execute("UPDATE message SET content = '改过的话 changed words' WHERE msgId = ?", (edited,))
    db.execute("DELETE FROM message WHERE msgId = ?", (deleted,))
    new = wechat_new_messages(db, rng, 4)
    db.close()
    sync()
    db = apsw.Connection(str(phone))
    db.execute("ALTER TABLE message ADD COLUMN extra TEXT")
    wechat_recall(db, rng, recalled)
    db.close()
    sync()
    return root, dict(edited=edited, deleted=deleted, recalled=recalled, new=new)


def test_each_version_yields_what_it_added_changed_and_deleted(archived, tmp_path):
    root, m = archived
    pm = plugin_manager()
    backend = open_backend(pm, str(root / "target"))
    archive = open_archive(backend, "wechat")
    manifest = read_manifest(archive)
    assert manifest.version(3).base is not None  # the new column: version 3 comes whole
    copy = WorkingCopy(tmp_path)
    try:
        seen = {}
        for changes in walk(archive, manifest, pm, copy, 0):
            pairs = list(changes.pairs)
            seen[changes.version.number] = {
                "added": {a.id for b, a in pairs if b is None},
                "changed": {a.id: (b, a) for b, a in pairs if b is not None and a is not None},
                "deleted": {b.id for b, a in pairs if a is None}}
            assert copy.version == changes.version.number
    finally:
        copy.close()
        backend.close()
    assert len(seen[1]["added"]) == 200 and not seen[1]["changed"] and not seen[1]["deleted"]
    assert seen[2]["added"] == set(m["new"]) and seen[2]["deleted"] == {m["deleted"]}
    assert set(seen[2]["changed"]) == {m["edited"]}
    before, after = seen[2]["changed"][m["edited"]]
    assert after.text == "改过的话 changed words" and before.text != after.text
    # Read whole, version 3 still yields only the recall: the added column changes no message.
    assert not seen[3]["added"] and not seen[3]["deleted"] and set(seen[3]["changed"]) == {m["recalled"]}
    assert seen[3]["changed"][m["recalled"]][1].kind == RECALLED


def test_search_statuses_are_historys_and_one_working_copy_serves_both(archived):
    root, m = archived
    state = root / "state"
    out = root / "latest.jsonl"
    cli("export", "--state", state, "--source", "wechat", "--format", "jsonl", out)
    exported = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert exported[m["edited"]]["status"] == "edited" and exported[m["deleted"]]["status"] == "deleted"
    assert exported[m["recalled"]]["status"] == "recalled"
    found = cli("search", "--state", state, "--json", "--limit", 10_000, "的").stdout.splitlines()
    found += cli("search", "--state", state, "--json", "--limit", 10_000, "changed").stdout.splitlines()
    hits = [json.loads(line) for line in found]
    assert hits and any(h["status"] != "present" for h in hits)
    for hit in hits:
        record = exported[hit["id"]]
        assert hit["status"] == record["status"], hit
        assert hit["text"] in {record["text"], *(h["text"] for h in record["history"])}
    # One kept working state per source: history's, which the search index reads through.
    assert sorted(p.name for p in (state / "history").iterdir()) == ["wechat.copy", "wechat.sqlite"]
    assert not (state / "search" / "copies").exists()
    kept = {p.name.split("-")[0] for p in (state / "history" / "wechat.copy").iterdir()}  # -wal/-shm beside
    assert kept == {"mirror.db", "app.db"}


def test_jsonl_records_say_when_each_message_was_first_seen(archived):
    root, m = archived
    manifest = json.loads((root / "target" / "wechat" / "manifest.json").read_text())["versions"]
    out = root / "first.jsonl"
    cli("export", "--from", root / "target", "--format", "jsonl", out)
    records = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    for message_id, record in records.items():
        number = 2 if message_id in m["new"] else 1
        assert record["first_seen"]["version"] == number, record
        assert record["first_seen"]["time"][:19] == manifest[number - 1]["time"][:19]
    assert records[m["deleted"]]["first_seen"]["version"] == 1  # a deleted message keeps when it came
    out = root / "first-v1.jsonl"
    cli("export", "--from", root / "target", "--version", 1, "--format", "jsonl", out)
    assert {json.loads(line)["first_seen"]["version"] for line in out.read_text(encoding="utf-8").splitlines()} == {1}
