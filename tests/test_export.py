"""`syncd export`: any version, from a target or the state dir, as JSONL, offline HTML or text."""

from __future__ import annotations

import io
import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import apsw
import pytest

from syncd.app import RECALLED, Message
from conftest import archive_with_recall, cli
from syncd.plugins import plugin_manager
from syncd.reading.model import Annotations, Filters, MessageHistory, Reading, open_database
from syncd.reading.render_html import write_html
from syncd.reading.render_jsonl import write_jsonl
from syncd.samples import create_wechat, wechat_recall

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
FIELDS = {"source", "app", "id", "conversation", "conversation_name", "sender", "sender_name", "from_me", "time",
          "kind", "text", "status", "history"}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'




@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """A WeChat sample archived twice (a recall in between), with a hostile message text."""
    root = tmp_path_factory.mktemp("export")
    phone = root / "EnMicroMsg.db"
    create_wechat(phone, messages=300, chats=8, seed=7)
    db = apsw.Connection(str(phone))
    db.execute("UPDATE message SET content = ?, type = 1, isSend = 1 WHERE msgId = 5", (HOSTILE,))
    recalled, recalled_text = db.execute(
        "SELECT msgId, content FROM message WHERE type = 1 ORDER BY msgId DESC LIMIT 1").fetchone()
    db.close()
    archive_with_recall(phone, root, recalled)
    return root, (recalled, recalled_text)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_of_each_version(archived):
    root, (recalled, recalled_text) = archived
    first = root / "v1.jsonl"
    cli("export", "--from", root / "target", "--version", 1, "--format", "jsonl", first)
    records = read_jsonl(first)
    assert len(records) == 300 and all(FIELDS <= set(r) for r in records)
    assert all(ISO.match(r["time"]) and r["status"] == "present" and r["history"] == [] for r in records)
    assert {r["source"] for r in records} == {"wechat"} and {r["app"] for r in records} == {"wechat"}
    by_id = {r["id"]: r for r in records}
    assert by_id[recalled]["text"] == recalled_text.split(":\n", 1)[-1] and by_id[recalled]["kind"] != RECALLED
    # Field by field against the database the archive restores.
    restored = root / "restored-v1.db"
    cli("restore", "--from", root / "target", "--version", 1, restored)
    db = apsw.Connection(str(restored))
    names = dict(db.execute("SELECT username, coalesce(nullif(conRemark, ''), nickname) FROM rcontact"))
    for msg_id, talker, create_time, is_send in db.execute("SELECT msgId, talker, createTime, isSend FROM message"):
        r = by_id[msg_id]
        assert (r["conversation"], r["conversation_name"], r["from_me"]) == (talker, names[talker], bool(is_send))
        assert r["time"].startswith(__import__("time").strftime("%Y-%m-%dT%H:%M:%S", __import__("time").gmtime(create_time // 1000)))
    db.close()
    second = root / "v2.jsonl"
    cli("export", "--from", root / "target", "--format", "jsonl", second)
    latest = {r["id"]: r for r in read_jsonl(second)}
    # With history wired in (issue 13's contract), a recalled message carries the text it had before the recall.
    assert latest[recalled]["kind"] == RECALLED and latest[recalled]["status"] == "recalled"
    assert latest[recalled]["text"] == recalled_text.split(":\n", 1)[-1]


def test_jsonl_to_stdout_and_from_the_state_dir(archived):
    root, _ = archived
    out = cli("export", "--state", root / "state", "--format", "jsonl", "-").stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(records) == 300


def test_filters(archived):
    root, _ = archived
    everything = read_jsonl(root / "v2.jsonl") if (root / "v2.jsonl").exists() else None
    out = root / "filtered.jsonl"
    cli("export", "--from", root / "target", "--format", "jsonl", "--conversation", "相亲相爱一家人",
        "--since", "2019-03-01T06:00", "--until", "2019-03-03", out)
    records = read_jsonl(out)
    assert records and {r["conversation_name"] for r in records} == {"相亲相爱一家人"}
    assert all("2019-03-01T06:00:00Z" <= r["time"] < "2019-03-03T00:00:00Z" for r in records)
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)
    mine = root / "mine.jsonl"
    cli("export", "--from", root / "target", "--format", "jsonl", "--participant", "我", mine)
    assert {r["from_me"] for r in read_jsonl(mine)} == {True}
    if everything:
        assert len(read_jsonl(mine)) == sum(r["from_me"] for r in everything)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_folder_is_offline_and_message_markup_is_inert(archived):
    root, _ = archived
    out = root / "html"
    cli("export", "--from", root / "target", "--format", "html", out)
    pages = [out / "index.html", *sorted((out / "chats").glob("*.html"))]
    assert len(pages) > 5
    seen_hostile = False
    for page in pages:
        parsed = Tags()
        parsed.feed(page.read_text(encoding="utf-8"))
        tags = [t for t, _ in parsed.tags]
        assert "script" not in tags and "img" not in tags and "iframe" not in tags
        assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
        links = [a.get("href") for t, a in parsed.tags if t == "a"]
        assert all(not re.match(r"^[a-z]+:", href) for href in links), links  # no external asset or link
        assert any(t == "meta" and "script" not in a.get("content", "") and "default-src 'none'" in a.get("content", "")
                   for t, a in parsed.tags)
        seen_hostile |= HOSTILE.split(":\n")[-1] in "".join(parsed.text)
    assert seen_hostile  # the text is there, as text
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "相亲相爱一家人" in index and index.count('href="chats/') == len(pages) - 1


def test_text_folder(archived):
    root, _ = archived
    out = root / "txt"
    cli("export", "--from", root / "target", "--format", "txt", "--version", 1, out)
    index = (out / "index.txt").read_text(encoding="utf-8")
    chats = sorted((out / "chats").glob("*.txt"))
    assert len(chats) == index.count("chats/")
    lines = [line for chat in chats for line in chat.read_text(encoding="utf-8").splitlines()[2:]
             if ISO.match(line.split("  ", 1)[0])]
    assert len(lines) == 300


def test_bad_output_is_refused_and_nothing_is_written(archived):
    root, _ = archived
    taken = root / "taken.jsonl"
    taken.write_text("mine\n")
    result = cli("export", "--from", root / "target", "--format", "jsonl", taken, code=2)
    assert "already exists" in result.output and taken.read_text() == "mine\n"
    cli("export", "--from", root / "target", "--format", "html", "-", code=2)
    full = root / "full"
    full.mkdir()
    (full / "x").write_text("x")
    cli("export", "--from", root / "target", "--format", "txt", full, code=2)
    cli("export", "--format", "txt", root / "nowhere", code=2)  # neither --from nor --state
    cli("export", "--from", root / "target", "--version", 9, "--format", "jsonl", root / "v9.jsonl", code=1)
    assert not (root / "v9.jsonl").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_history_annotations_give_status_and_the_text_before_a_recall(tmp_path):
    """What the history layer passes in shows in every format: status, earlier texts, the recalled text."""
    path = tmp_path / "EnMicroMsg.db"
    create_wechat(path, messages=30, chats=3, seed=1)
    raw = apsw.Connection(str(path))
    wechat_recall(raw, random.Random(0), 10)
    raw.close()
    db = open_database(path)
    gone = Message(999_999, "ghost@chatroom", "wxid_x", False, 1_551_398_500_000, "text", "deleted words")
    notes = Annotations({10: MessageHistory("recalled", ({"text": "before", "version": 1, "time": "2019-03-01T00:00:00Z"},),
                                            text="before")}, deleted=(gone,))
    reading = Reading(db, "w", plugin_manager(), Filters(), notes)
    out = io.StringIO()
    write_jsonl(reading, out)
    records = {r["id"]: r for r in map(json.loads, out.getvalue().splitlines())}
    assert records[10]["status"] == "recalled" and records[10]["text"] == "before"
    assert records[10]["history"] == [{"text": "before", "version": 1, "time": "2019-03-01T00:00:00Z"}]
    assert records[999_999]["status"] == "deleted" and records[999_999]["text"] == "deleted words"
    assert records[1]["status"] == "present"
    folder = tmp_path / "html"
    folder.mkdir()
    write_html(reading, folder)
    pages = "".join(p.read_text(encoding="utf-8") for p in (folder / "chats").glob("*.html"))
    assert 'class="badge">recalled<' in pages and 'class="badge">deleted<' in pages and "deleted words" in pages


def test_a_database_no_profile_knows_exports_its_tables(tmp_path):
    phone = tmp_path / "notes.db"
    db = apsw.Connection(str(phone))
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, pic BLOB);"
               "INSERT INTO notes VALUES (1, 'first <b>', x'0001'), (2, 'second', NULL)")
    db.close()
    (tmp_path / "t").mkdir()
    cli("sync", phone, "--to", tmp_path / "t", "--state", tmp_path / "s")
    out = tmp_path / "notes.jsonl"
    result = cli("export", "--from", tmp_path / "t", "--format", "jsonl", out)
    assert "unknown app" in result.output
    rows = read_jsonl(out)
    assert rows == [{"source": "notes.db", "app": None, "table": "notes", "row": {"id": 1, "body": "first <b>", "pic": "base64:AAE="}},
                    {"source": "notes.db", "app": None, "table": "notes", "row": {"id": 2, "body": "second", "pic": None}}]
    cli("export", "--from", tmp_path / "t", "--format", "html", tmp_path / "h")
    assert "first &lt;b&gt;" in (tmp_path / "h" / "chats" / "0001.html").read_text()


def test_every_source_of_a_target(tmp_path):
    (tmp_path / "t").mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        create_wechat(tmp_path / f"{name}.db", messages=20, chats=3, seed=seed)
        cli("sync", tmp_path / f"{name}.db", "--to", tmp_path / "t", "--state", tmp_path / "s", "--name", name)
    out = tmp_path / "all.jsonl"
    cli("export", "--from", tmp_path / "t", "--format", "jsonl", out)
    assert sorted({r["source"] for r in read_jsonl(out)}) == ["a", "b"] and len(read_jsonl(out)) == 40
    cli("export", "--from", tmp_path / "t", "--format", "txt", tmp_path / "txt")
    assert sorted(p.name for p in (tmp_path / "txt").iterdir()) == ["a", "b"]
    cli("export", "--from", tmp_path / "t", "--version", 1, "--format", "jsonl", tmp_path / "v.jsonl", code=2)
