"""Search on the 1,000,000-message WeChat-like database: one new version indexed, and queries answered.

Skipped in the normal run; `pytest --benchmark-only -s tests/benchmarks/test_search_bench.py`.
The database is bench/compare.py's cache when it is there (else built, minutes). Setup (not
timed): version 1 archived and indexed whole. Timed: indexing version 2 (1,000 new messages),
and searches for a two-character word, a rare word, a single character and a Latin word.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner

from syncd import samples
from syncd.cli import main
from syncd.plugins import open_backend, plugin_manager
from syncd.readback.restore import open_archive
from syncd.reading.search import SearchIndex

NEW = 1_000
QUERIES = ("明天", "生日", "惊喜吧", "吗", "review")


def sync(phone: Path, root: Path) -> None:
    result = CliRunner().invoke(main, ["sync", str(phone), "--to", str(root / "target"), "--state",
                                       str(root / "state"), "--name", "wechat"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, million):
    root = tmp_path_factory.mktemp("search-bench")
    phone = root / "EnMicroMsg.db"
    shutil.copyfile(million, phone)
    (root / "target").mkdir()
    started = time.perf_counter()
    sync(phone, root)
    pm = plugin_manager()
    backend = open_backend(pm, str(root / "target"))
    archive = open_archive(backend, "wechat")
    index = SearchIndex(root / "index")
    first = time.perf_counter()
    index.update(archive, pm)
    print(f"\nsetup: sync {first - started:.1f} s, index version 1 whole {time.perf_counter() - first:.1f} s")
    yield root, phone, pm, archive, index
    index.close()
    backend.close()


def test_index_one_new_version_of_1000_messages(benchmark, indexed):
    root, phone, pm, archive, index = indexed
    db = apsw.Connection(str(phone))
    samples.wechat_new_messages(db, random.Random(5), NEW)
    db.close()
    sync(phone, root)
    clocks = []

    def once():
        wall, cpu = time.perf_counter(), time.process_time()
        done = index.update(archive, pm)
        clocks.append((time.perf_counter() - wall, time.process_time() - cpu))
        return done

    assert benchmark.pedantic(once, rounds=1, iterations=1) == 1
    wall, cpu = clocks[0]
    benchmark.extra_info.update(wall_s=round(wall, 3), cpu_s=round(cpu, 3))
    print(f"\nindex version 2 (+{NEW} messages): {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU")


@pytest.mark.parametrize("query", QUERIES)
def test_search_answers(benchmark, indexed, query):
    index = indexed[4]
    found = benchmark.pedantic(lambda: index.search(query), rounds=5, iterations=1)
    assert found
    best = benchmark.stats.stats.min
    print(f"\nsearch {query!r}: {len(found)} hits (limit 50), best {best * 1000:.1f} ms")
