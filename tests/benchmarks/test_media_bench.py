"""The media store against its anchors, side by side in one run:

- a first pass over a generated tree (large videos, photos, stickers, duplicates) versus `cp -r` of the
  same tree to the same disk;
- a pass with nothing new over 20,000 small files (the scan's stat-only path);
- SHA-256 (hashlib) versus BLAKE3 (`pip install blake3`) over the same bytes: why the store uses SHA-256.

Skipped in the normal run; `pytest --benchmark-only tests/benchmarks/test_media_bench.py`.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from syncd.media.backup import back_up
from syncd.plugins import open_backend, plugin_manager
from syncd.samples.media import MiB, create_media_tree

ROUNDS = 3


@pytest.fixture(scope="module")
def media_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("media") / "tree"
    size = create_media_tree(root, 300 * MiB, random.Random(14))  # 3 videos, 67 photos, 1,200 stickers
    return root, size


def fresh(base: Path) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    return base


@pytest.mark.benchmark(group="media first pass")
def test_first_pass_syncd(benchmark, media_tree, tmp_path):
    root, size = media_tree

    def setup():
        fresh(tmp_path / "target"), shutil.rmtree(tmp_path / "state", ignore_errors=True)
        return (open_backend(plugin_manager(), str(tmp_path / "target")), root, tmp_path / "state"), {}

    result = benchmark.pedantic(back_up, setup=setup, rounds=ROUNDS)
    benchmark.extra_info.update(tree_bytes=size, sent=result.bytes_sent, objects=result.objects_sent, files=result.files)


@pytest.mark.benchmark(group="media first pass")
def test_first_pass_cp_r(benchmark, media_tree, tmp_path):
    root, size = media_tree

    def setup():
        shutil.rmtree(tmp_path / "copy", ignore_errors=True)
        return (["cp", "-r", str(root), str(tmp_path / "copy")],), {"check": True}

    benchmark.pedantic(subprocess.run, setup=setup, rounds=ROUNDS)
    benchmark.extra_info.update(tree_bytes=size)


@pytest.mark.benchmark(group="media no change")
def test_no_change_over_20000_files(benchmark, tmp_path):
    rnd = random.Random(20)
    root = tmp_path / "many"
    for i in range(20_000):
        path = root / f"{i % 100:02d}" / f"t{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(rnd.randrange(500, 4000)))
    fresh(tmp_path / "target")
    target = open_backend(plugin_manager(), str(tmp_path / "target"))
    back_up(target, root, tmp_path / "state")
    result = benchmark.pedantic(back_up, (target, root, tmp_path / "state"), rounds=ROUNDS)
    assert (result.files, result.files_read, result.bytes_sent) == (20_000, 0, 0)


HASHED = random.Random(3).randbytes(64 * MiB)


@pytest.mark.benchmark(group="media hash 64 MiB")
def test_hash_sha256(benchmark):
    benchmark(lambda: hashlib.sha256(HASHED).digest())


@pytest.mark.benchmark(group="media hash 64 MiB")
def test_hash_blake3(benchmark):
    blake3 = pytest.importorskip("blake3", reason="the comparison needs `pip install blake3`")
    benchmark(lambda: blake3.blake3(HASHED).digest())
