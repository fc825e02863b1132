"""`syncd browse` links each message's media to the file as that version holds it, served by the real
server process behind its token, original bytes; nothing outside the version's listing is served."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from html import unescape
from urllib.parse import unquote

import pytest

from test_browse import _printed_url
from test_media_export import PREFIX, archived  # noqa: F401 (a fixture)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def get(url: str, cookie: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def server(archived):  # noqa: F811
    process = subprocess.Popen([sys.executable, "-m", "syncd", "browse", "--from", str(archived["nas"]), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _printed_url(process)
        status, headers, _ = get(url)
        assert status == 303
        yield url.split("?")[0].rstrip("/"), headers["Set-Cookie"].split(";")[0]
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_chat_pages_link_media_and_the_server_gives_the_original_bytes(archived, server):  # noqa: F811
    base, cookie = server
    _, _, listing = get(base + "/s/chat.db/", cookie)
    chats = set(re.findall(r'href="(/s/chat\.db/chat\?[^"]+)"', listing.decode()))
    served = {}
    for chat in chats:
        html = get(base + unescape(chat), cookie)[2].decode()
        for href, reference in re.findall(r'<div class="media"><a href="([^"]+)">([^<]+)</a></div>', html):
            status, headers, body = get(base + unescape(href), cookie)
            assert status == 200 and headers["Content-Type"] == "image/heic"
            served[unescape(reference)] = body
            assert unquote(unescape(href)).startswith("/s/chat.db/media/1/Attachments/")
    assert served and all(archived["there"][r] == data for r, data in served.items())
    assert not set(served) & archived["missing"]
    some = next(iter(served)).removeprefix(PREFIX)
    assert get(f"{base}/s/chat.db/media/1/Attachments/{some}")[0] == 403  # no cookie, no file
    for other in ("Attachments/not/listed.jpg", "../../state/media/index-cache.json", f"Attachments/{some}/x"):
        assert get(f"{base}/s/chat.db/media/1/{other}", cookie)[0] == 404
    assert get(f"{base}/s/chat.db/media/9/Attachments/{some}", cookie)[0] == 400  # no such version
