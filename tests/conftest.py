"""Shared fixtures: a phone folder, a state dir and a folder target, plus a sync/restore harness."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

from logical import logical_state
from syncd.archive.plain import Archive
from syncd.cli import main
from syncd.plugins import open_backend, plugin_manager
from syncd.readback.restore import restore
from syncd.sync import sync
from syncd.testing import with_test_backends

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Real storage servers on 127.0.0.1 (WsgiDAV, rclone serve webdav/s3/sftp), started on first use.
pytest_plugins = ("servers",)

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
# Property tests run hundreds of syncs, each with a dozen fsyncs: on tmpfs those cost nothing.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def cli(*args, code=0):
    """`syncd ARGS…` through click's runner, expected to exit with `code`; the result."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def sync_to_folder(phone: Path, root: Path, name: str = "wechat") -> None:
    """`syncd sync PHONE` into the folder target ROOT/target (made on first use), state in ROOT/state."""
    (root / "target").mkdir(exist_ok=True)
    cli("sync", phone, "--to", root / "target", "--state", root / "state", "--name", name)


def archive_with_recall(phone: Path, root: Path, recalled: int) -> None:
    """Two versions of a WeChat PHONE in ROOT/target: as it is, then with message `recalled` recalled."""
    from syncd.samples import wechat_recall

    sync_to_folder(phone, root)
    db = apsw.Connection(str(phone))
    wechat_recall(db, random.Random(0), recalled)
    db.close()
    sync_to_folder(phone, root)


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary folder, in memory where the machine offers it."""
    return tempfile.TemporaryDirectory(dir=SCRATCH)


# The benchmarks' 1,000,000-message WeChat-like database, as bench/compare.py caches it.
MILLION = 1_000_000
MILLION_CACHE = Path(tempfile.gettempdir()) / "syncd-bench" / "cache" / f"wechat-{MILLION}-seed0.db"


@pytest.fixture(scope="session")
def million(tmp_path_factory) -> Path:
    """The benchmarks' million-message database: bench/compare.py's cache when it is there, else built once (minutes)."""
    if MILLION_CACHE.exists():
        return MILLION_CACHE
    from syncd import samples

    path = tmp_path_factory.mktemp("million") / "EnMicroMsg.db"
    samples.create_wechat(path, messages=MILLION, seed=0)
    return path


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Keep the retry wrapper's backoff, not its number of tries, short in tests."""
    monkeypatch.setattr("syncd.delivery.retry.RETRY_BASE_DELAY", 0.01)
    monkeypatch.setattr("syncd.delivery.retry.RETRY_MAX_DELAY", 0.05)


@pytest.fixture(scope="session")
def pm():
    """The plugins a user has, plus the test-only memory backend."""
    return with_test_backends(plugin_manager())


class Harness:
    """A phone database, its local state and one folder target, with what each version held."""

    def __init__(self, root: Path, pm, db_name: str = "chat.db"):
        self.root = root
        self.pm = pm
        self.phone = root / "phone"
        self.phone.mkdir()
        self.source = self.phone / db_name
        self.state = root / "state"
        self.target = root / "nas"
        self.target.mkdir()
        self.expected: dict[int, dict] = {}

    def connect(self) -> apsw.Connection:
        return apsw.Connection(str(self.source))

    def execute(self, sql: str, *params) -> None:
        db = self.connect()
        try:
            db.execute(sql, params).fetchall()
        finally:
            db.close()

    def sync(self, targets: list[str] | None = None):
        report = sync(self.source, [str(self.target)] if targets is None else targets,
                      state_dir=self.state, pm=self.pm)
        if report.version:
            self.expected[report.version.number] = logical_state(self.source)
        return report

    def archive(self, target: Path | None = None) -> Archive:
        backend = open_backend(self.pm, str(target or self.target))
        return Archive(backend, self.source.name)

    def restore(self, number: int | None = None, target: Path | None = None) -> Path:
        out = self.root / f"restored-{number}-{len(list(self.root.iterdir()))}.db"
        restore(self.archive(target), out, number=number)
        return out

    def check_all_versions(self, target: Path | None = None) -> None:
        """Every version restores to exactly what the phone held when it was archived."""
        for number, state in self.expected.items():
            actual = logical_state(self.restore(number, target))
            assert actual == state, f"version {number} differs in {first_difference(state, actual)}"


def first_difference(expected: dict, actual: dict) -> str:
    for part in ("pragmas", "schema"):
        if expected[part] != actual[part]:
            return f"{part}: {expected[part]} != {actual[part]}"
    for table in sorted(expected["tables"].keys() | actual["tables"].keys()):
        if expected["tables"].get(table) != actual["tables"].get(table):
            return f"table {table!r}"
    return "nothing?"


@pytest.fixture
def harness(tmp_path, pm):
    return Harness(tmp_path, pm)
