"""History across versions through the real CLI: edits, a recall, deletes, and a rebuild from a target alone."""

from __future__ import annotations

import json
import random
import re
import stat
from pathlib import Path

import apsw
import pytest

from syncd.app import RECALLED
from conftest import cli, sync_to_folder
from syncd.samples import create_wechat, wechat_delete_chat, wechat_new_messages, wechat_recall

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")




def export(root: Path, name: str, *where) -> dict:
    out = root / f"{name}.jsonl"
    cli("export", *where, "--format", "jsonl", out)
    return {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}


def versions(root: Path) -> list[dict]:
    return json.loads((root / "target" / "wechat" / "manifest.json").read_text())["versions"]


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """Four versions: the first copy; an edit and new messages; a recall; a deleted message and a deleted chat."""
    root = tmp_path_factory.mktemp("history")
    phone = root / "EnMicroMsg.db"
    create_wechat(phone, messages=300, chats=8, seed=3)

    def sync():
        sync_to_folder(phone, root)

    sync()
    db, rng = apsw.Connection(str(phone)), random.Random(1)
    mine = [row for row in db.execute("SELECT msgId, talker, content FROM message WHERE type = 1 AND isSend = 1"
                                      " ORDER BY msgId")]
    (edited, edit_talker, first_text), (recalled, recall_talker, recall_text), (deleted, _, deleted_text) = mine[:3]
    db.execute("UPDATE message SET content = 'edited words' WHERE msgId = ?", (edited,))
    new = wechat_new_messages(db, rng, 5)
    db.close()
    sync()
    db = apsw.Connection(str(phone))
    wechat_recall(db, rng, recalled)
    db.close()
    sync()
    db = apsw.Connection(str(phone))
    chat = next(t for (t,) in db.execute("SELECT DISTINCT talker FROM message ORDER BY talker")
                if t not in (edit_talker, recall_talker))
    gone_chat = [m for (m,) in db.execute("SELECT msgId FROM message WHERE talker = ?", (chat,))]
    db.execute("DELETE FROM message WHERE msgId = ?", (deleted,))
    wechat_delete_chat(db, rng, chat)
    db.close()
    sync()
    return root, dict(edited=edited, first_text=first_text, recalled=recalled, recall_text=recall_text,
                      deleted=deleted, deleted_text=deleted_text, gone_chat=gone_chat, new=new)


def test_statuses_and_texts_as_of_the_latest_version(archived):
    root, m = archived
    v = versions(root)
    assert len(v) == 4 and all("base" not in x for x in v[1:])  # versions 2-4 are read from changesets
    records = export(root, "latest", "--from", root / "target")
    assert len(records) == 305  # nothing deleted is lost from the export

    edited = records[m["edited"]]
    assert (edited["status"], edited["text"]) == ("edited", "edited words")
    assert edited["history"] == [{"text": m["first_text"], "version": 1, "time": edited["history"][0]["time"]}]
    assert ISO.match(edited["history"][0]["time"]) and edited["history"][0]["time"][:19] == v[0]["time"][:19]

    recalled = records[m["recalled"]]
    assert (recalled["status"], recalled["kind"], recalled["text"]) == ("recalled", RECALLED, m["recall_text"])
    assert recalled["history"] == []

    deleted = records[m["deleted"]]
    assert (deleted["status"], deleted["text"]) == ("deleted", m["deleted_text"])
    assert m["gone_chat"] and all(records[i]["status"] == "deleted" for i in m["gone_chat"])

    touched = {m["edited"], m["recalled"], m["deleted"], *m["gone_chat"]}
    assert all(r["status"] == "present" and r["history"] == [] for i, r in records.items() if i not in touched)
    assert set(m["new"]) <= set(records)


def test_an_earlier_version_knows_only_what_had_happened_by_then(archived):
    root, m = archived
    second = export(root, "v2", "--from", root / "target", "--version", 2)
    assert second[m["edited"]]["status"] == "edited"
    assert (second[m["recalled"]]["status"], second[m["recalled"]]["text"]) == ("present", m["recall_text"])
    assert second[m["recalled"]]["kind"] != RECALLED
    assert all(second[i]["status"] == "present" for i in [m["deleted"], *m["gone_chat"]])
    assert len(second) == 305


def test_the_state_dirs_kept_history_matches_a_rebuild_from_the_target_alone(archived):
    root, m = archived
    kept = export(root, "state", "--state", root / "state", "--source", "wechat")
    history = root / "state" / "history" / "wechat.sqlite"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert kept == export(root, "target", "--from", root / "target")
    # A copy of the target on a fresh machine: no state dir at all, the same history.
    fresh = export(root, "fresh", "--from", root / "target", "--version", 4)
    assert fresh == kept and fresh[m["recalled"]]["text"] == m["recall_text"]
    # Read again, the kept file is updated in place, not rebuilt: the same answer.
    assert export(root, "again", "--state", root / "state", "--source", "wechat") == kept


def test_a_target_whose_later_version_lists_no_delta_is_one_line_not_a_traceback(tmp_path):
    """The manifest comes from the target: version 1 still restores, and the history read beside it says what
    is wrong with version 2 instead of failing an assert."""
    phone = tmp_path / "EnMicroMsg.db"
    create_wechat(phone, messages=50, chats=3, seed=1)
    sync_to_folder(phone, tmp_path)
    db = apsw.Connection(str(phone))
    db.execute("UPDATE message SET content = 'edited words' WHERE msgId = 3")
    db.close()
    sync_to_folder(phone, tmp_path)
    manifest = tmp_path / "target" / "wechat" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["versions"][1]["delta"]
    manifest.write_text(json.dumps(data))
    result = cli("export", "--from", tmp_path / "target", "--version", 1, "--format", "jsonl", tmp_path / "v1.jsonl",
                 code=1)
    assert "version 2 of 'wechat' has no delta to apply" in result.output and "Traceback" not in result.output
