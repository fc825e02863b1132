"""What one new version costs the message history: 1,000 new messages on the 1,000,000-message database.

Skipped in the normal run; `pytest --benchmark-only tests/benchmarks/test_history_bench.py`.
The setup archives the 1 M database (bench/compare.py's cache when it is there) as version 1 and
reads it into the history file once; each round then starts from a copy of that file (and of its
working copy) and reads
version 2, whose delta holds the 1,000 messages (issue 13: at most 0.5 s).
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time

import apsw
import pytest

from syncd import samples
from syncd.archive.plain import Archive
from syncd.archive.state import SourceState
from syncd.plugins import open_backend, plugin_manager
from syncd.reading.history import History
from syncd.sync import sync

NEW = 1_000


@pytest.fixture(scope="module")
def archived(tmp_path_factory, million):
    root = tmp_path_factory.mktemp("history-bench")
    phone, target, state = root / "EnMicroMsg.db", root / "nas", root / "state"
    target.mkdir()
    shutil.copyfile(million, phone)
    pm = plugin_manager()
    sync(phone, [str(target)], state_dir=state, pm=pm)
    history_file = root / "v1" / "history.sqlite"
    history_file.parent.mkdir(mode=0o700)
    archive = Archive(open_backend(pm, str(SourceState(state, phone.name).archive_dir)), phone.name)
    history = History(history_file)
    history.update(archive, pm)
    history.close()
    change = apsw.Connection(str(phone))
    samples.wechat_new_messages(change, random.Random(1), NEW)
    change.close()
    report = sync(phone, [str(target)], state_dir=state, pm=pm)
    assert report.version.number == 2 and report.version.delta is not None
    return root, archive, phone, history_file


def test_history_of_one_version_of_a_thousand_messages(benchmark, archived):
    root, archive, phone, history_v1 = archived
    pm = plugin_manager()
    work = root / "work" / "history.sqlite"

    def fresh():  # the history file and its working copy as version 1 left them
        shutil.rmtree(work.parent, ignore_errors=True)
        shutil.copytree(history_v1.parent, work.parent)
        os.sync()  # else a commit's fsync in the timed part flushes the hundreds of MB this copy just wrote
        return (), {}

    clocks = []

    def read_version_2():
        history = History(work)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return history.update(archive, pm)
        finally:
            history.close()
            clocks.append((time.perf_counter() - wall, time.process_time() - cpu))

    assert benchmark.pedantic(read_version_2, setup=fresh, rounds=5) == 2
    wall, cpu = min(w for w, _ in clocks), min(c for _, c in clocks)
    benchmark.extra_info.update(best_wall_s=round(wall, 3), best_cpu_s=round(cpu, 3))
    print(f"\nhistory of version 2 (+{NEW} messages): best {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU")
    new = sqlite3.connect(work).execute("SELECT count(*) FROM event WHERE version = 2 AND what = 'new'").fetchone()
    assert new == (NEW,)
