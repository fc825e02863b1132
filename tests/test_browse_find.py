"""browse's search box asks the search index: hits in the source shown, their status, and the version picker respected.

The real app (werkzeug's test client over syncd.browse.app.Browser) on an archive the real CLI made;
the headless-browser run of the same box is in test_browse.py.
"""

from __future__ import annotations

import html
import re

import apsw
import pytest
from werkzeug.test import Client

from conftest import sync_to_folder
from syncd.browse.app import Browser
from syncd.browse.shelf import Shelf
from syncd.plugins import open_backend, plugin_manager
from syncd.readback.restore import open_archive
from syncd.reading.history import annotations_in, history_folder
from syncd.reading.search import index_search
from syncd.samples import create_wechat

FIRST, EDITED, GONE = "灯塔在海边 lighthouse", "新的灯塔 beacon", "海鸥飞走了 seagull"
HIT = re.compile(r'<li class="hit( elsewhere)?"><div class="where"><a href="([^"]+)">.*?</a>(.*?)</div>'
                 r'<div class="text">(.*?)</div></li>')


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """v1 with two planted texts; v2: one edited, the other's message deleted on the phone."""
    root = tmp_path_factory.mktemp("browse-find")
    phone = root / "EnMicroMsg.db"
    create_wechat(phone, messages=150, chats=4, seed=5)
    db = apsw.Connection(str(phone))
    for msg_id, text in ((1, FIRST), (2, GONE)):
        db.execute("UPDATE message SET content = ?, type = 1 WHERE msgId = ?", (text, msg_id))
    db.close()
    sync_to_folder(phone, root)
    db = apsw.Connection(str(phone))
    db.execute("UPDATE message SET content = ? WHERE msgId = 1", (EDITED,))
    db.execute("DELETE FROM message WHERE msgId = 2")
    db.close()
    sync_to_folder(phone, root)
    pm = plugin_manager()
    backend = open_backend(pm, str(root / "target"))
    archives = [open_archive(backend, "wechat")]
    derived = root / "derived"
    with index_search(archives, pm, derived) as search, \
            Shelf(archives, pm, annotations_in(pm, history_folder(derived)), search=search) as shelf:
        yield Client(Browser(shelf))
    backend.close()


def hits(client: Client, query: str, version: int) -> list[dict]:
    page = client.get("/s/wechat/search", query_string={"q": query, "v": version}).get_data(as_text=True)
    return [{"elsewhere": bool(other), "link": html.unescape(link), "badges": re.findall(r"class=\"?badge[^>]*>([^<]+)", where),
             "text": html.unescape(text)} for other, link, where, text in HIT.findall(page)]


def test_a_hit_shows_the_text_the_version_shown_held_with_that_versions_status(client):
    assert hits(client, "灯塔", 2) == [{"elsewhere": False, "link": hits(client, "灯塔", 2)[0]["link"],
                                       "badges": ["edited"], "text": EDITED}]  # one hit per message
    assert [(h["text"], h["badges"], h["elsewhere"]) for h in hits(client, "灯塔", 1)] == [(FIRST, [], False)]
    assert "v=2" in hits(client, "灯塔", 2)[0]["link"]


def test_a_text_from_another_version_is_marked_and_links_there(client):
    earlier = hits(client, "lighthouse", 2)
    assert [(h["text"], h["elsewhere"]) for h in earlier] == [(FIRST, True)]
    assert "from version 1" in earlier[0]["badges"] and "v=1" in earlier[0]["link"]
    later = hits(client, "beacon", 1)
    assert [(h["text"], h["elsewhere"]) for h in later] == [(EDITED, True)]
    assert "from version 2" in later[0]["badges"] and "v=2" in later[0]["link"]


def test_a_deleted_message_is_found_with_its_status_as_of_the_version_shown(client):
    assert [(h["text"], h["badges"]) for h in hits(client, "海鸥", 2)] == [(GONE, ["deleted"])]
    assert [(h["text"], h["badges"]) for h in hits(client, "seagull", 1)] == [(GONE, [])]


def test_nothing_found_and_hostile_queries(client):
    for query in ("zzzqqq", '"', "NEAR(", "*"):
        page = client.get("/s/wechat/search", query_string={"q": query, "v": 2})
        assert page.status_code == 200 and "Nothing found." in page.get_data(as_text=True)


def test_hostile_cursors_and_versions_get_a_page_or_one_line_not_a_traceback(client):
    conversation = re.search(r'chat\?c=([^"&]+)', client.get("/s/wechat/").get_data(as_text=True)).group(1)
    for cursor in ("9" * 390, "-" + "9" * 390, "9" * 30 + "~x"):  # past any time: the newest page, as a malformed one
        for side in ("before", "after"):
            page = client.get(f"/s/wechat/chat?c={conversation}&{side}={cursor}")
            assert page.status_code == 200, page.get_data(as_text=True)[-300:]
    for version in ("²", "١"):  # digits to str.isdigit(), not to int()
        page = client.get("/s/wechat/", query_string={"v": version})
        assert page.status_code == 400 and "is not a version number" in page.get_data(as_text=True)


def test_pages_of_an_open_version_read_no_manifest(client, monkeypatch):
    """Every link names its version: once it is open, paging it and its media cost no download of the manifest."""
    shelf = client.application.shelf
    assert client.get("/s/wechat/", query_string={"v": 1}).status_code == 200
    reads = []
    archive = shelf.archives["wechat"]
    monkeypatch.setattr(archive, "manifest", lambda real=archive.manifest: reads.append(1) or real())
    assert client.get("/s/wechat/media/1/nothing.jpg").status_code == 404
    assert reads == []
    client.get("/s/wechat/", query_string={"v": 1})
    assert len(reads) == 1  # the version list shown on the page, read fresh


def test_a_hit_on_a_message_dated_past_year_9999_links_to_its_chat_not_a_traceback(tmp_path):
    """A phone's time column is outside data: a hit whose time no date holds links to the chat's newest page."""
    phone = tmp_path / "EnMicroMsg.db"
    create_wechat(phone, messages=50, chats=3, seed=5)
    db = apsw.Connection(str(phone))
    db.execute("UPDATE message SET content = 'far future lighthouse', type = 1, createTime = ? WHERE msgId = 1",
               (10 ** 16,))
    db.close()
    sync_to_folder(phone, tmp_path)
    pm = plugin_manager()
    backend = open_backend(pm, str(tmp_path / "target"))
    archives = [open_archive(backend, "wechat")]
    derived = tmp_path / "derived"
    with index_search(archives, pm, derived) as search, \
            Shelf(archives, pm, annotations_in(pm, history_folder(derived)), search=search) as shelf:
        page = Client(Browser(shelf)).get("/s/wechat/search", query_string={"q": "lighthouse"})
    backend.close()
    assert page.status_code == 200
    [(_, link, _, text)] = HIT.findall(page.get_data(as_text=True))
    assert text == "far future lighthouse" and "after=" not in link and link.endswith("#m-1")
