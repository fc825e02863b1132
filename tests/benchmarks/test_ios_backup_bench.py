"""What an iOS backup source costs: an unchanged encrypted backup's pass, and a large Manifest.db's first.

Skipped in the normal run; run them with

    pytest --benchmark-only tests/benchmarks/test_ios_backup_bench.py

The backups are built by tests/ios_backup_builder.py from the real fixtures (low PBKDF2 round
counts, as the format allows); `test_password_derivation` times the real counts alone (10 M
PBKDF2-SHA256 + 10 k PBKDF2-SHA1), the one cost a daemon pays once per start.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import SHARED_FIXTURES  # noqa: E402
from ios_backup_builder import SMS, WHATSAPP, BackupBuilder, Keys, wechat_path  # noqa: E402
from syncd.samples import create_wechat  # noqa: E402
from syncd.source import SourceOptions  # noqa: E402
from syncd_ios_backup import IOSBackup  # noqa: E402
from syncd_ios_backup.keybag import parse_keybag, password_key  # noqa: E402

PASSWORD = "correct horse battery staple"
LARGE_MANIFEST_ROWS = 200_000
ROUNDS = 3


def _backup(folder: Path, scratch: Path, password: str | None, filler_rows: int = 0) -> Path:
    if not SHARED_FIXTURES.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
    builder = BackupBuilder(folder, password=password, filler_rows=filler_rows)
    builder.put(SMS, (SHARED_FIXTURES / "imessage-macos-chat.db").read_bytes())
    builder.put(WHATSAPP, (SHARED_FIXTURES / "whatsapp-ios-ChatStorage.sqlite").read_bytes())
    mm = scratch / "MM.sqlite"
    if not mm.exists():
        create_wechat(mm, messages=20_000)
    builder.put(wechat_path("wxid_ann", "MM"), mm.read_bytes())
    return builder.write()


def _password_file(folder: Path) -> Path:
    path = folder / "password"
    path.write_text(PASSWORD)
    path.chmod(0o600)
    return path


def _workdir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    return path


def _first_pass(folder: Path, options: SourceOptions, work: Path) -> int:
    kind = IOSBackup(folder, options, work)
    listed = kind.databases()
    for db in listed:
        kind.materialise(db)
    kind.close()
    return len(listed)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_first_pass_of_a_large_manifest(benchmark, tmp_path, encrypted):
    """200,000 file rows in Manifest.db: copy (or decrypt) it, find the chat databases, open each."""
    folder = _backup(tmp_path / "backup", tmp_path, PASSWORD if encrypted else None, LARGE_MANIFEST_ROWS)
    options = SourceOptions(password_file=_password_file(tmp_path))
    found = benchmark.pedantic(_first_pass, setup=lambda: ((folder, options, _workdir(tmp_path / "work")), {}),
                               rounds=ROUNDS)
    assert found == 3
    benchmark.extra_info["manifest_bytes"] = (folder / "Manifest.db").stat().st_size


@pytest.mark.parametrize("process", ["daemon", "new-process"])
def test_unchanged_encrypted_backup_pass(benchmark, tmp_path, process):
    """A pass over an encrypted backup whose Manifest.db did not change: the daemon's kind object
    (in memory), or a new process's (its private Manifest.db copy still valid): nothing decrypted."""
    folder = _backup(tmp_path / "backup", tmp_path, PASSWORD, LARGE_MANIFEST_ROWS // 10)
    options, work = SourceOptions(password_file=_password_file(tmp_path)), _workdir(tmp_path / "work")
    kind = IOSBackup(folder, options, work)
    first = {db.name: db.signature for db in kind.databases()}

    def unchanged_pass():
        source = kind if process == "daemon" else IOSBackup(folder, options, work)
        return {db.name: db.signature for db in source.databases()}

    assert benchmark(unchanged_pass) == first


def test_password_derivation(benchmark):
    """The real cost of opening an encrypted backup's keybag (iOS 10.2+ counts), paid once per kind object."""
    bag = parse_keybag(Keys.new(PASSWORD, random.Random(0), sha256_rounds=1, sha1_rounds=1).keybag())
    bag.attributes[b"DPIC"], bag.attributes[b"ITER"] = 10_000_000, 10_000  # what iOS 10.2 and later write
    benchmark.pedantic(password_key, (bag, PASSWORD), rounds=1)


def test_unchanged_encrypted_backup_whole_sync(benchmark, tmp_path):
    """`syncd sync` of an unchanged encrypted backup, end to end in one process: open the kind, list the apps,
    find each database untouched (nothing decrypted, no key derived) and each target up to date."""
    from syncd.plugins import plugin_manager
    from syncd.sync import sync_source

    folder = _backup(tmp_path / "backup", tmp_path, PASSWORD, LARGE_MANIFEST_ROWS // 10)
    options, target, state = SourceOptions(password_file=_password_file(tmp_path)), tmp_path / "nas", tmp_path / "state"
    target.mkdir()
    pm = plugin_manager()
    first = sync_source(folder, [str(target)], state_dir=state, pm=pm, options=options)
    assert all(r.version for r in first)
    again = benchmark(lambda: sync_source(folder, [str(target)], state_dir=state, pm=pm, options=options))
    assert [r.version for r in again] == [None] * len(first)
