"""How fast a version exports: JSONL from the 1,000,000-message WeChat-like database.

Skipped in the normal run; `pytest --benchmark-only tests/benchmarks/test_export_bench.py`.
The database is bench/compare.py's cache (`$TMPDIR/syncd-bench/cache/wechat-1000000-seed0.db`)
when it is there, else built once into pytest's temp dir (minutes). Reported: messages per
second of wall time, and per second of CPU time (what a shared machine can't take away).
"""

from __future__ import annotations

import os
import time

import pytest

from conftest import MILLION
from syncd.plugins import plugin_manager
from syncd.reading.model import Reading, open_database
from syncd.reading.render_jsonl import write_jsonl

MESSAGES = MILLION  # what the `million` fixture holds


def test_jsonl_export_of_a_million_messages(benchmark, million, tmp_path):
    pm = plugin_manager()
    out = tmp_path / "out.jsonl"
    clocks = []

    def export_once():
        db = open_database(million)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            with open(out, "w", encoding="utf-8") as f:
                count = write_jsonl(Reading(db, "wechat", pm), f)
            clocks.append((time.perf_counter() - wall, time.process_time() - cpu))
            return count
        finally:
            db.close()
            os.remove(out)

    count = benchmark.pedantic(export_once, rounds=3, iterations=1)
    assert count == MESSAGES
    best_wall = min(w for w, _ in clocks)
    best_cpu = min(c for _, c in clocks)
    benchmark.extra_info.update(messages=count, messages_per_s_wall=round(count / best_wall),
                                messages_per_s_cpu=round(count / best_cpu))
    print(f"\nJSONL export: {count:,} messages, {count / best_wall:,.0f}/s wall, {count / best_cpu:,.0f}/s CPU")
