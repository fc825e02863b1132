"""`syncd search`: every text of every version, Chinese included, through the real CLI."""

from __future__ import annotations

import json
import random
import re
import shutil
import stat
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner

from conftest import cli
from syncd.cli import main
from syncd.reading.segment import SEPARATOR, fts_query, hit_spans, index_columns, pieces
from syncd.samples import create_wechat, wechat_new_messages, wechat_recall

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
HOSTILE_QUERIES = ['"', "NEAR(", "*", 'a" OR "b', "微信 NEAR(撤回", "^x", "words:x", "(", "-", "AND", "\ue000", "x*"]
# Planted in the sample: what the Chinese rules are about.
PLANTED = {
    1: "我们用微信付款吧",
    2: "他把消息撤回了",
    3: "微信。Pay later",  # 微信pay must not match across the full stop
    4: "用微信Pay付款",
    5: "撤",
    6: "你好。再见",  # 好再 must not match across the full stop
    7: "e-mail me at noon",
}




def hits(*args) -> list[dict]:
    out = cli("search", "--json", "--limit", 10_000, *args).stdout
    return [json.loads(line) for line in out.splitlines()]


# -- segmentation: the same at index and query time ------------------------------------------


def test_han_runs_become_bigrams_and_characters():
    assert index_columns("撤回了") == ("撤回 回了", "撤 回 了")
    assert index_columns("微信pay") == ("微信 pay", "微 信 pay")
    words, _ = index_columns("微信。Pay")
    assert words == f"微信 {SEPARATOR} Pay"
    assert fts_query("撤回") == 'words : "撤回"' and fts_query("撤") == 'chars : "撤"'
    assert fts_query("a好") == 'chars : "a 好"'
    assert fts_query("ＱＱ") == 'words : "QQ"'  # full-width folds (NFKC), as in the index


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_query_syntax_is_never_passed_through(query):
    match = fts_query(query)
    db = apsw.Connection(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(words, chars, content='', tokenize='unicode61 remove_diacritics 2')")
    w, c = index_columns("a NEAR b words x AND")
    db.execute("INSERT INTO f(rowid, words, chars) VALUES (1, ?, ?)", (w, c))
    if match is not None:
        db.execute("SELECT rowid FROM f WHERE f MATCH ?", (match,)).fetchall()  # never a syntax error
        assert match.count('"') % 2 == 0
    # A separator typed by the user is no token: only gaps beside Han text make one.
    assert fts_query(SEPARATOR) is None and fts_query(f"a{SEPARATOR}b") == 'words : "a b"'


def test_hit_spans_mark_words_and_runs():
    text = "用微信Pay付款, paying"
    assert [text[a:b] for a, b in hit_spans(text, "微信pay")] == ["微信Pay"]
    assert pieces("a。好") == [("a", False), (SEPARATOR, False), ("好", True)]


# -- the CLI on an archived WeChat sample ------------------------------------------------------


@pytest.fixture(scope="module")
def wechat(tmp_path_factory):
    """A WeChat sample with planted texts, archived twice: then a recall, an edit, a delete and new messages."""
    root = tmp_path_factory.mktemp("search")
    phone = root / "EnMicroMsg.db"
    create_wechat(phone, messages=400, chats=8, seed=3)
    db = apsw.Connection(str(phone))
    for msg_id, text in PLANTED.items():
        db.execute("UPDATE message SET content = ?, type = 1 WHERE msgId = ?", (text, msg_id))
    db.close()
    (root / "target").mkdir()
    cli("sync", phone, "--to", root / "target", "--state", root / "state", "--name", "wechat")
    first = hits("--from", root / "target", "--state", root / "index", "微信")  # indexes version 1
    db = apsw.Connection(str(phone))
    wechat_recall(db, random.Random(0), 1)
    db.execute("UPDATE message SET content = '用微信Pay付款，改好了' WHERE msgId = 4")
    db.execute("DELETE FROM message WHERE msgId = 2")
    new = wechat_new_messages(db, random.Random(1), 20)
    db.execute("UPDATE message SET content = '新来的微信消息', type = 1 WHERE msgId = ?", (new[0],))
    db.close()
    cli("sync", phone, "--to", root / "target", "--state", root / "state", "--name", "wechat")
    return root, first, new


def test_two_character_words_and_single_characters(wechat):
    root, first, _ = wechat
    assert {h["id"] for h in first} >= {1, 3, 4}
    found = hits("--from", root / "target", "--state", root / "index", "撤回")
    assert 2 in {h["id"] for h in found}
    single = hits("--from", root / "target", "--state", root / "index", "撤")
    assert {2, 5} <= {h["id"] for h in single}


def test_mixed_latin_han_and_sentence_boundaries(wechat):
    root = wechat[0]
    found = {h["id"] for h in hits("--from", root / "target", "--state", root / "index", "微信pay")}
    assert 4 in found and 3 not in found
    assert 6 not in {h["id"] for h in hits("--from", root / "target", "--state", root / "index", "好再")}
    assert 6 in {h["id"] for h in hits("--from", root / "target", "--state", root / "index", "你好。再见")}
    assert 7 in {h["id"] for h in hits("--from", root / "target", "--state", root / "index", "e-mail")}


def test_recalled_edited_and_deleted_texts_stay_searchable(wechat):
    root, _, new = wechat
    by_text = {h["text"]: h for h in hits("--from", root / "target", "--state", root / "index", "微信")}
    recalled = by_text[PLANTED[1]]
    assert (recalled["status"], recalled["status_version"], recalled["version"]) == ("recalled", 2, 1)
    assert by_text[PLANTED[4]]["status"] == "edited" and by_text["用微信Pay付款，改好了"]["version"] == 2
    assert by_text["新来的微信消息"]["id"] == new[0] and by_text["新来的微信消息"]["status"] == "present"
    deleted = [h for h in hits("--from", root / "target", "--state", root / "index", "撤回") if h["id"] == 2]
    assert deleted and deleted[0]["status"] == "deleted" and deleted[0]["text"] == PLANTED[2]
    assert all(h["marked"].count("«") >= 1 for h in by_text.values())


def test_hits_are_exactly_the_texts_that_hold_the_query(wechat, tmp_path):
    """Against a scan of every text message of every version restored: bigram phrases are substring search."""
    root = wechat[0]
    texts = set()
    for number in (1, 2):
        restored = tmp_path / f"v{number}.db"
        cli("restore", "--from", root / "target", "--version", number, restored)
        db = apsw.Connection(str(restored))
        texts |= {(i, c.split(":\n", 1)[-1] if "@chatroom" in t else c)
                  for i, t, c, k in db.execute("SELECT msgId, talker, content, type FROM message") if c and k == 1}
        db.close()
    for query in ("生日", "表扬了", "明天", "吗", "好的", "记得带伞"):
        expected = {(i, t) for i, t in texts if query in t}
        found = {(h["id"], h["text"]) for h in hits("--from", root / "target", "--state", root / "index", query)
                 if h["kind"] == "text"}  # links and files show their title: the profile's text, not the row's
        assert found == expected and expected, query


def test_filters(wechat):
    root = wechat[0]
    every = hits("--from", root / "target", "--state", root / "index", "的")
    chat = every[0]["conversation_name"]
    only = hits("--from", root / "target", "--state", root / "index", "--conversation", chat, "的")
    assert only and {h["conversation_name"] for h in only} == {chat} and len(only) < len(every)
    times = sorted(h["time"] for h in every)
    middle = times[len(times) // 2]
    later = hits("--from", root / "target", "--state", root / "index", "--since", middle[:19] + "Z", "的")
    assert later and all(h["time"] >= middle[:19] for h in later) and len(later) < len(every)
    assert hits("--from", root / "target", "--state", root / "index", "--app", "whatsapp", "的") == []
    assert hits("--from", root / "target", "--state", root / "index", "--source", "wechat", "--app", "wechat", "的")


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_through_the_cli(wechat, query):
    root = wechat[0]
    result = CliRunner().invoke(main, ["search", "--from", str(root / "target"), "--state", str(root / "index"), query])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "fts5" not in result.output.lower()
    if result.exit_code == 2:
        assert result.stderr.startswith("error: ") and "hint: " in result.stderr


def test_index_is_private_incremental_and_rebuilt_from_the_target_alone(wechat, tmp_path):
    root = wechat[0]
    index = root / "index" / "search"
    assert stat.S_IMODE(index.stat().st_mode) == 0o700
    for path in [index / "index.sqlite", *(index / "copies").rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    db = apsw.Connection(str(index / "index.sqlite"))
    assert db.execute("SELECT version FROM source WHERE name = 'wechat'").fetchone() == (2,)
    # Version 2 added texts only for the rows its delta touched: the edit and the new messages.
    added = db.execute("SELECT count(*) FROM text WHERE version = 2").fetchone()[0]
    db.close()
    assert 1 <= added <= 21
    fresh = {(h["id"], h["text"], h["status"]) for h in hits("--from", root / "target", "--state", tmp_path, "的")}
    kept = {(h["id"], h["text"], h["status"]) for h in hits("--from", root / "target", "--state", root / "index", "的")}
    assert fresh == kept and fresh
    # The local archive in the state dir reads the same.
    local = {(h["id"], h["text"]) for h in hits("--state", root / "state", "的")}
    assert local == {(i, t) for i, t, _ in kept}


def test_bad_input(wechat):
    root = wechat[0]
    result = CliRunner().invoke(main, ["search", "微信"])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["search", "--from", str(root / "target"), "--state", str(root / "index"),
                                       "--since", "yesterday", "微信"])
    assert result.exit_code == 2 and "yesterday" in result.output


# -- the WhatsApp fixture ----------------------------------------------------------------------


def test_whatsapp_fixture(tmp_path):
    if not FIXTURES.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
    phone = tmp_path / "ChatStorage.sqlite"
    shutil.copyfile(FIXTURES / "whatsapp-ios-ChatStorage.sqlite", phone)
    (tmp_path / "target").mkdir()
    cli("sync", phone, "--to", tmp_path / "target", "--state", tmp_path / "state", "--name", "whatsapp")
    db = apsw.Connection(f"file:{phone}?immutable=1", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    texts = {pk: text for pk, text in db.execute("SELECT Z_PK, ZTEXT FROM ZWAMESSAGE WHERE ZTEXT IS NOT NULL")}
    db.close()
    for word in ("generate", "storage", "qnap", "lol"):
        expected = {pk for pk, text in texts.items() if re.search(rf"\b{word}\b", text, re.IGNORECASE)}
        found = hits("--from", tmp_path / "target", "--state", tmp_path / "index", word)
        assert {h["id"] for h in found} == expected and expected, word
        assert all(h["app"] == "whatsapp" and h["source"] == "whatsapp" and h["conversation_name"] for h in found)
        assert all(word in h["marked"].lower().split("«", 1)[1] for h in found)
    human = cli("search", "--from", tmp_path / "target", "--state", tmp_path / "index", "QNAP").stdout
    assert "«QNAP»" in human and "whatsapp (whatsapp)" in human
