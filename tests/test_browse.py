"""`syncd browse`: the real server process on 127.0.0.1, read through a real headless Chromium (selenium).

The archive: a WeChat sample archived twice, a message recalled in between, one message
holding markup. What the pages should show is worked out from the phone's database and
from `syncd export` (another path through the library), never written down by hand.
"""

from __future__ import annotations

import json
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import apsw
import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import archive_with_recall, cli
from syncd.browse.server import MAX_REQUEST_HEADERS
from syncd.browse.timeline import PAGE
from syncd.samples import create_wechat

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
WINDOW = (1200, 900)
BADGE_RED, MY_GREEN = (0xf8, 0xb4, 0xb4), (0xdc, 0xf5, 0xdc)  # .recalled .badge and .m.me in the stylesheet
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def follow(driver, action) -> None:
    """Do what leads to another page (a click, an Enter), then wait until that page has replaced this
    one: looking sooner could find an element of the page being left."""
    old = driver.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(driver, 60).until(lambda _: _gone(old))
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _gone(element) -> bool:
    """Whether the page `element` was on has been left. chromedriver reports a node that goes while it
    is being looked at as an unknown error ("does not belong to the document"), not as stale."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" not in str(e):
            raise
        return True
    return False


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """The target, and what the phone held: the recalled message and its text, the markup message."""
    root = tmp_path_factory.mktemp("browse")
    phone = root / "EnMicroMsg.db"
    create_wechat(phone, messages=400, chats=5, seed=11)
    db = apsw.Connection(str(phone))
    hostile = db.execute("SELECT msgId, talker FROM message WHERE type = 1 AND isSend = 1 ORDER BY msgId LIMIT 1"
                         ).fetchone()
    db.execute("UPDATE message SET content = ? WHERE msgId = ?", (HOSTILE, hostile[0]))
    recalled, talker, text = db.execute("SELECT msgId, talker, content FROM message WHERE type = 1 AND isSend = 1"
                                        " ORDER BY msgId DESC LIMIT 1").fetchone()
    db.close()
    archive_with_recall(phone, root, recalled)
    return dict(root=root, phone=phone, recalled=recalled, recalled_talker=talker, recalled_text=text,
                hostile=hostile)


@pytest.fixture(scope="module")
def server(archived):
    """`python -m syncd browse --from TARGET --port 0` as a real process; yields the URL it printed."""
    scratch = archived["root"] / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}  # so the test can see the restored versions go at exit
    process = subprocess.Popen([sys.executable, "-m", "syncd", "browse", "--from", str(archived["root"] / "target"),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = _printed_url(process)
    yield url, process, scratch
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=20)


def _printed_url(process, timeout=60.0) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+", line)
            if found:
                return found.group(0)
            assert line, f"browse exited: {process.stderr.read()}"
    raise AssertionError("browse printed no URL")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def signed_in(server, browser):
    """The browser, having opened the printed URL once (the token becomes a cookie)."""
    url, _, _ = server
    browser.get(url)
    return browser, url.split("?")[0]


def phone_messages(phone: Path, talker: str) -> list[int]:
    db = apsw.Connection(f"file:{phone}?immutable=1", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    try:
        return [m for (m,) in db.execute("SELECT msgId FROM message WHERE talker = ? ORDER BY createTime, msgId",
                                         (talker,))]
    finally:
        db.close()


def shown_ids(driver) -> list[int]:
    return [int(e.get_attribute("id")[2:]) for e in driver.find_elements(By.CSS_SELECTOR, "main .m")]


def exported(root: Path, version: int | None = None) -> list[dict]:
    out = root / f"export-{version or 'latest'}-{time.monotonic_ns()}.jsonl"
    cli("export", "--from", root / "target", *(["--version", version] if version else []), "--format", "jsonl", out)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def check_screenshot(driver, path: Path) -> Image.Image:
    assert driver.save_screenshot(str(path))
    image = Image.open(path).convert("RGB")
    assert image.size == tuple(driver.execute_script("return [window.innerWidth, window.innerHeight]"))
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 8, "the screenshot is blank"
    return image


# -- the gate ------------------------------------------------------------------------------


def test_requests_without_the_token_get_403_and_nothing_changes_state(server):
    url, _, _ = server
    base = url.split("?")[0]
    for path in ("", "s/wechat/", "s/wechat/chat?c=x", "style.css", "?token=wrong"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=30)
        assert refused.value.code == 403
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(url, timeout=60) as signed:  # the token, once: a cookie, then the page
        assert signed.url == base and "Sources" in signed.read().decode()
        assert "default-src 'none'" in signed.headers["Content-Security-Policy"]
    with pytest.raises(urllib.error.HTTPError) as posted:
        opener.open(urllib.request.Request(base + "s/wechat/", data=b"x=1", method="POST"), timeout=30)
    assert posted.value.code == 405
    for bad in ("s/wechat/?v=999", "s/wechat/?v=1e3", "s/nosuch/"):  # one line naming the problem, 400
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(base + bad, timeout=60)
        assert refused.value.code == 400 and b"<p>" in refused.value.read()


def test_an_endless_request_line_is_refused_not_read_on(server):
    """A line without end (no newline, ever) gets 414 once the header bound is read, not a server
    that keeps reading it into memory; the server goes on serving."""
    url, process, _ = server
    port = int(re.search(r":(\d+)/", url).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        try:
            conn.sendall(b"GET /" + b"a" * (MAX_REQUEST_HEADERS + 4096))
            answer = conn.recv(64)
        except ConnectionResetError:
            answer = b"reset"  # refused while the rest was still arriving: also not read on
    assert answer.startswith(b"HTTP/1.1 414") or answer == b"reset", answer
    with pytest.raises(urllib.error.HTTPError) as refused:  # still serving (403: no token)
        urllib.request.urlopen(url.split("?")[0], timeout=30)
    assert refused.value.code == 403 and process.poll() is None


# -- in the browser ------------------------------------------------------------------------


def test_conversations_are_listed_and_tab_reaches_them(signed_in, archived, tmp_path):
    driver, base = signed_in
    driver.get(base)
    assert "token" not in driver.current_url  # the redirect took it out of the address bar
    follow(driver, lambda: driver.find_element(By.LINK_TEXT, "wechat").click())
    shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "a.chat")]
    expected = {r["conversation_name"] for r in exported(archived["root"])}
    assert sorted(shown) == sorted(expected)
    check_screenshot(driver, tmp_path / "conversations.png")
    body = driver.find_element(By.TAG_NAME, "body")
    body.click()
    reached = []
    for _ in range(30):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        active = driver.switch_to.active_element
        if "chat" in (active.get_attribute("class") or ""):
            reached.append(active.text)
            if len(reached) == 2:
                break
    assert reached[:2] == shown[:2]
    follow(driver, lambda: driver.switch_to.active_element.send_keys(Keys.ENTER))  # and Enter opens it
    assert driver.find_element(By.TAG_NAME, "h1").text == shown[1]


def test_a_chat_opens_at_its_newest_page_and_pages_by_keyset(signed_in, archived):
    driver, base = signed_in
    phone = archived["phone"]
    records = exported(archived["root"])
    counts = {}
    for r in records:
        counts[r["conversation"]] = counts.get(r["conversation"], 0) + 1
    talker = max(counts, key=counts.get)
    ids = phone_messages(phone, talker)
    assert len(ids) > 2 * PAGE
    driver.get(base + "s/wechat/")
    name = next(r["conversation_name"] for r in records if r["conversation"] == talker)
    follow(driver, lambda: driver.find_element(By.LINK_TEXT, name).click())
    assert shown_ids(driver) == ids[-PAGE:]
    follow(driver, lambda: driver.find_element(By.LINK_TEXT, "older").click())
    assert shown_ids(driver) == ids[-2 * PAGE:-PAGE]
    follow(driver, lambda: driver.find_element(By.LINK_TEXT, "newer").click())
    assert shown_ids(driver) == ids[-PAGE:]
    follow(driver, lambda: driver.find_element(By.LINK_TEXT, "oldest").click())
    assert shown_ids(driver) == ids[:PAGE]
    seen = []
    while True:
        seen += shown_ids(driver)
        more = driver.find_elements(By.CSS_SELECTOR, "nav.pager a[accesskey=j]")
        if not more:
            break
        follow(driver, lambda: more[0].click())
    assert seen == ids  # every message once, in order, to the newest


def test_a_recalled_message_shows_its_badge_and_earlier_text_and_the_version_picker_goes_back(
        signed_in, archived, tmp_path):
    driver, base = signed_in
    talker, recalled = archived["recalled_talker"], archived["recalled"]
    driver.get(base + "s/wechat/")
    follow(driver, lambda: driver.find_element(By.CSS_SELECTOR, f'a.chat[href*="c={talker}"]').click())
    message = driver.find_element(By.ID, f"m-{recalled}")
    assert "recalled" in message.get_attribute("class")
    assert message.find_element(By.CLASS_NAME, "badge").text == "recalled"
    before = archived["recalled_text"]
    assert message.find_element(By.CLASS_NAME, "text").text == before.split(":\n", 1)[-1]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", message)
    image = check_screenshot(driver, tmp_path / "recalled.png")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert BADGE_RED in colours and MY_GREEN in colours  # style.css came through the gate and the CSP
    docs = ROOT / "docs" / "browse.png"
    if not docs.exists():  # the README's picture, kept once (regenerate by deleting it)
        image.save(docs)
    Select(driver.find_element(By.ID, "version")).select_by_value("1")
    follow(driver, lambda: driver.find_element(By.XPATH, "//form[.//select[@id='version']]//button").click())
    assert "v=1" in driver.current_url
    first = driver.find_element(By.ID, f"m-{recalled}")
    assert "recalled" not in first.get_attribute("class") and not first.find_elements(By.CLASS_NAME, "badge")
    assert first.find_element(By.CLASS_NAME, "text").text == before.split(":\n", 1)[-1]
    Select(driver.find_element(By.ID, "version")).select_by_value("2")
    follow(driver, lambda: driver.find_element(By.XPATH, "//form[.//select[@id='version']]//button").click())
    assert driver.find_element(By.ID, f"m-{recalled}").find_element(By.CLASS_NAME, "badge").text == "recalled"


def test_search_finds_a_chinese_word(signed_in, archived):
    driver, base = signed_in
    records = exported(archived["root"])
    texts = [r["text"] for r in records if r["text"]]
    words = sorted({m.group(0) for t in texts for m in re.finditer(r"[\u4e00-\u9fff]{2}", t)})
    word = next(w for w in random.Random(2).sample(words, len(words)) if 2 <= sum(w in t for t in texts) <= 40)
    expected = sum(word in t for t in texts)
    driver.get(base + "s/wechat/")
    box = driver.find_element(By.ID, "q")
    follow(driver, lambda: box.send_keys(word, Keys.ENTER))
    hits = driver.find_elements(By.CSS_SELECTOR, "li.hit .text")
    assert len(hits) == expected and all(word in h.text for h in hits)
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith(f"{expected} found")
    follow(driver, lambda: hits[0].find_element(By.XPATH, "../div[@class='where']/a").click())  # a hit leads into its chat
    assert any(word in e.text for e in driver.find_elements(By.CSS_SELECTOR, "main .m .text"))


def test_markup_in_a_message_stays_text(signed_in, archived):
    driver, base = signed_in
    msg_id, talker = archived["hostile"]
    driver.get(base + "s/wechat/")
    follow(driver, lambda: driver.find_element(By.CSS_SELECTOR, f'a.chat[href*="c={talker}"]').click())
    follow(driver, lambda: driver.find_element(By.LINK_TEXT, "oldest").click())
    while not driver.find_elements(By.ID, f"m-{msg_id}"):
        follow(driver, lambda: driver.find_element(By.CSS_SELECTOR, "nav.pager a[accesskey=j]").click())
    message = driver.find_element(By.ID, f"m-{msg_id}")
    assert message.find_element(By.CLASS_NAME, "text").text == HOSTILE
    assert not message.find_elements(By.TAG_NAME, "img") and not message.find_elements(By.TAG_NAME, "script")
    assert driver.execute_script("return window.pwned === undefined")


def test_the_restored_versions_are_private_and_removed_at_exit(server, signed_in):
    url, process, scratch = server
    folders = list(scratch.glob("syncd-browse-*"))
    assert len(folders) == 1 and folders[0].stat().st_mode & 0o777 == 0o700
    assert list(folders[0].glob("*.db"))  # the versions the pages above asked for
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert not list(scratch.glob("syncd-browse-*")) and not list(scratch.glob("syncd-history-*"))
