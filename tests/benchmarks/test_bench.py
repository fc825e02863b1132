"""How syncd's stages scale with the database: detection, diff, persist and restore.

Skipped in the normal run (`addopts = --benchmark-skip`); run them with

    pytest --benchmark-only tests/benchmarks [--benchmark-json OUT]

Each size is a WeChat-like database archived once (version 1), then changed by
CHANGE new messages and their chat-list rows, the change a sync pass typically meets.
Only compare figures from the same machine; `bench/compare.py` sets syncd against
its peers.
"""

from __future__ import annotations

import random
import shutil
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import apsw
import pytest

from syncd import samples
from syncd.archive.plain import Archive
from syncd.capture.detect import plan_changes
from syncd.mirror.mirror import Mirror
from syncd.plugins import open_backend
from syncd.readback.restore import restore
from syncd.capture.snapshot import SnapshotStore
from syncd.archive.state import SourceState
from syncd.sync import sync

SIZES = [20_000, 100_000, 400_000]  # messages
CHANGE = 200  # new messages per change
ROUNDS = 3  # for the stages that need a fresh copy of the state each round
NAME = "EnMicroMsg.db"


@dataclass
class World:
    """One size: the changed phone database, and a state dir and target holding the old version."""

    root: Path
    source: Path  # the phone's file, already changed
    state: Path  # template: holds version 1, never synced further
    target: Path  # template, likewise

    def fresh(self, name: str) -> tuple[Path, Path]:
        """A disposable copy of the template state dir and target."""
        state, target = self.root / name / "state", self.root / name / "nas"
        shutil.rmtree(self.root / name, ignore_errors=True)
        shutil.copytree(self.state, state)
        shutil.copytree(self.target, target)
        return state, target


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n // 1000}k")
def world(request, tmp_path_factory, pm) -> World:
    root = tmp_path_factory.mktemp(f"bench-{request.param}")
    source = root / "phone" / NAME
    source.parent.mkdir()
    samples.create_wechat(source, messages=request.param, seed=0)
    state, target = root / "template-state", root / "template-nas"
    target.mkdir()
    sync(source, [str(target)], state_dir=state, pm=pm)
    with closing(apsw.Connection(str(source))) as db:
        samples.wechat_new_messages(db, random.Random(1), CHANGE)
    return World(root, source, state, target)


@pytest.fixture(scope="module")
def taken(world):
    """A copy of the state whose replica took in the changed file, and that snapshot (old pages kept)."""
    state, _ = world.fresh("snapshot")
    local = SourceState(state, NAME)
    return local, SnapshotStore(local.staging).take(world.source)


def test_detection(benchmark, taken):
    """Which rows may have changed: the page map of the snapshot (plan_changes)."""
    _, snapshot = taken
    plan = benchmark(plan_changes, snapshot)
    assert plan.path == "incremental", plan.reason


def test_diff(benchmark, taken):
    """Bringing the mirror up to the snapshot within the plan's ranges (Mirror.absorb), rolled back."""
    local, snapshot = taken
    mirror = Mirror(local.mirror_path)
    plan = plan_changes(snapshot)

    def absorb():
        changes = mirror.absorb(snapshot.path, plan=plan)
        mirror.rollback()
        return changes

    try:
        changes = benchmark(absorb)
    finally:
        mirror.close()
    assert changes.counts.added >= CHANGE


def test_persist(benchmark, world, pm):
    """A whole incremental pass: snapshot, detect, diff, persist locally, upload to a folder."""
    def setup():
        state, target = world.fresh("persist")
        return (world.source, [str(target)]), {"state_dir": state, "pm": pm}

    report = benchmark.pedantic(sync, setup=setup, rounds=ROUNDS)
    assert report.detection.path == "incremental" and report.version.number == 2


def test_restore(benchmark, world, pm):
    """Rebuilding version 2 (base + one delta) from the folder target alone."""
    state, target = world.fresh("restore")
    sync(world.source, [str(target)], state_dir=state, pm=pm)
    archive = Archive(open_backend(pm, str(target)), NAME)
    out = world.root / "restored.db"

    version = benchmark.pedantic(restore, (archive, out), {"number": 2, "force": True}, rounds=ROUNDS)
    assert version.number == 2
