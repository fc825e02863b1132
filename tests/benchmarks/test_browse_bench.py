"""How fast `syncd browse` shows a 100,000-message chat, and that paging keeps memory flat.

Skipped in the normal run; `pytest --benchmark-only -s tests/benchmarks/test_browse_bench.py`.
The database is bench/compare.py's 1,000,000-message WeChat-like cache (built once into
pytest's temp dir when absent: minutes); its largest chat but two holds ~108,000 messages.
Pages go through the whole WSGI app (routes, keyset paging, history lookups, HTML) with
werkzeug's test client: what the browser waits for, minus the socket. A version is
restored once and then kept open (syncd.browse.shelf), so its restore is not in a page's time.
"""

from __future__ import annotations

import re
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from werkzeug.test import Client

from syncd.archive.manifest import Version
from syncd.browse.app import Browser
from syncd.browse.shelf import Opened
from syncd.plugins import plugin_manager
from syncd.reading.model import Reading, open_database

BIG_CHAT = 100_000
DEEP_PAGES = 200


class OpenDatabase:
    """A shelf holding one version that is already open: the state every page after the first is in."""

    def __init__(self, path: Path):
        self.lock = threading.RLock()
        started = time.perf_counter()
        db = open_database(path)
        self.version = Version(1, "2026-01-01T00:00:00+00:00", None, {})
        self.opened = Opened("wechat", self.version, Reading(db, "wechat", plugin_manager()), path, {})
        self.open_seconds = time.perf_counter() - started
        self.sources = ["wechat"]

    def open(self, source, number=None):
        return self.opened

    def versions(self, source):
        return (self.version,)


@pytest.fixture(scope="module")
def app(million):
    shelf = OpenDatabase(million)
    db = shelf.opened.reading.db
    sizes = db.execute("SELECT talker, count(*) FROM message GROUP BY talker ORDER BY 2").fetchall()
    big = next(talker for talker, n in sizes if n >= BIG_CHAT)
    small = sizes[0][0]
    print(f"\nopening the version (conversations, names): {shelf.open_seconds * 1000:.0f} ms;"
          f" chats: {dict(sizes)[big]:,} and {dict(sizes)[small]:,} messages")
    return Client(Browser(shelf)), big, small, dict(sizes)


def get(client: Client, talker: str, **cursor) -> str:
    response = client.get("/s/wechat/chat", query_string={"c": talker, **cursor})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def peak_kib(action) -> float:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def test_first_page_of_a_100000_message_chat(benchmark, app):
    client, big, small, sizes = app
    page = benchmark.pedantic(get, args=(client, big), rounds=10, iterations=1, warmup_rounds=1)
    assert page.count('id="m-') == 50
    best, median = benchmark.stats.stats.min, benchmark.stats.stats.median
    benchmark.extra_info.update(messages=sizes[big], best_ms=round(best * 1000, 1), median_ms=round(median * 1000, 1))
    print(f"\nnewest page of {sizes[big]:,} messages: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms")
    assert median <= 0.3


def test_paging_deep_into_the_chat_costs_and_holds_what_the_first_page_does(benchmark, app):
    client, big, small, sizes = app
    timings, peaks, seen = [], [], []
    benchmark.pedantic(lambda: None, rounds=1)  # a benchmark (skipped in the normal run); timed by hand below
    cursor = {"after": ""}
    for n in range(DEEP_PAGES):
        started = time.perf_counter()
        if n in (0, DEEP_PAGES - 1):
            holder = {}
            peaks.append(peak_kib(lambda: holder.setdefault("page", get(client, big, **cursor))))
            page = holder["page"]
        else:
            page = get(client, big, **cursor)
        timings.append(time.perf_counter() - started)
        seen += re.findall(r'id="m-(\d+)"', page)
        cursor = {"after": re.search(r'after=([^"&]+)"[^>]*accesskey="j"', page).group(1).replace("%7E", "~")}
    assert len(seen) == len(set(seen)) == DEEP_PAGES * 50  # it did page on: every message once
    older = {"before": cursor["after"]}
    old_peak = peak_kib(lambda: get(client, big, **older))
    small_peak = peak_kib(lambda: get(client, small))
    first, last = timings[0], sorted(timings[1:])[len(timings[1:]) // 2]
    print(f"\noldest page {first * 1000:.1f} ms; pages 2-{DEEP_PAGES} median {last * 1000:.1f} ms; peak traced"
          f" memory: page 1 {peaks[0]:.0f} KiB, page {DEEP_PAGES} {peaks[1]:.0f} KiB, an 'older' page there"
          f" {old_peak:.0f} KiB, a {sizes[small]:,}-message chat {small_peak:.0f} KiB")
    benchmark.extra_info.update(oldest_ms=round(first * 1000, 1), deep_median_ms=round(last * 1000, 1),
                                peak_kib_first=round(peaks[0]), peak_kib_deep=round(peaks[1]))
    assert peaks[1] < 2 * peaks[0] + 256 and old_peak < 2 * peaks[0] + 256  # flat: one page, whatever the depth
