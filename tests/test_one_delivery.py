"""One delivery path for plain and encrypted targets (issue 11, item 2): the same steps cost the same on
either layout, and `sync`, the daemon and `status` find a target's deliveries under the same key."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from conftest import Harness
from syncd.archive import crypto
from syncd.archive import plain as archive_module
from syncd.archive.state import SourceState
from syncd.daemon.config import load_config
from syncd.daemon.status import status
from syncd.delivery.deliver import deliver_to, target_archive
from syncd.delivery.target import Target
from syncd.plugins import open_backend

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'hello')"
LAYOUTS = pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])


class Counting:
    """A backend that counts what it is asked, around a real one."""

    def __init__(self, inner):
        self.inner, self.location, self.schemes = inner, inner.location, inner.schemes
        self.calls: list[str] = []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.calls.append(name)
            return method(*args, **kwargs)
        return counted


@pytest.fixture(autouse=True)
def short_gaps(monkeypatch):
    """A manifest missing beside its objects is waited out (a replace in progress elsewhere): briefly here."""
    monkeypatch.setattr(archive_module, "MANIFEST_GAP_WAIT", 0.01)


@pytest.fixture
def phone(tmp_path, pm) -> Harness:
    phone = Harness(tmp_path, pm)
    phone.execute(SCHEMA)
    return phone


def target_of(phone: Harness, encrypted: bool) -> Target:
    if not encrypted:
        return Target(str(phone.target))
    return Target(str(phone.target), [crypto.keygen(phone.root / "identity.txt")])


def delivered_twice(phone: Harness, encrypted: bool) -> Target:
    """Two versions of the phone, each delivered to a target of the layout asked for; that target."""
    target = target_of(phone, encrypted)
    assert phone.sync([target]).ok
    phone.execute("INSERT INTO message VALUES (2, 'again')")
    assert phone.sync([target]).ok
    return target


def deliver_again(phone: Harness, target: Target) -> tuple:
    """Deliver the local head to `target` once more, directly; (report, backend calls)."""
    backend = Counting(open_backend(phone.pm, target.url))
    state = SourceState(phone.state, "chat.db")
    local = phone.archive(state.archive_dir)
    report = deliver_to(local, local.manifest(), target_archive(backend, "chat.db", target), state)
    return report, backend.calls


@LAYOUTS
def test_a_target_that_has_everything_costs_one_listing(phone, encrypted):
    target = delivered_twice(phone, encrypted)
    report, calls = deliver_again(phone, target)
    assert report.ok and report.version == 2 and report.bytes == 0
    assert calls == ["list"]


@LAYOUTS
def test_a_target_that_lost_only_its_manifest_gets_the_manifest_alone(phone, encrypted):
    """Objects still there whole are used again, on either layout: what goes out is the manifest."""
    target = delivered_twice(phone, encrypted)
    [manifest] = [p for p in phone.target.rglob("manifest.*")]
    objects = {p: p.read_bytes() for p in phone.target.rglob("objects/*")}
    manifest.unlink()
    report, calls = deliver_again(phone, target)
    assert report.ok and report.version == 2 and "lost" in report.note
    assert report.bytes == manifest.stat().st_size
    assert {p: p.read_bytes() for p in phone.target.rglob("objects/*")} == objects
    assert calls.count("write") == 1 and "delete" not in calls  # the manifest alone: the claim was there


@LAYOUTS
def test_sync_and_status_find_a_failed_delivery_under_the_same_key(phone, encrypted):
    """`sync` records a failure where `status` (and the daemon) look for the target's record."""
    target = target_of(phone, encrypted)
    assert phone.sync([target]).ok
    shutil.rmtree(phone.target)  # the share is not mounted
    phone.execute("INSERT INTO message VALUES (2, 'again')")
    report = phone.sync([target])
    assert not report.ok
    config = phone.root / "config.toml"
    encrypt_to = f"encrypt_to = {list(target.encrypt_to)!r}\n" if encrypted else ""
    config.write_text(f'state_dir = "{phone.state}"\n[[source]]\nname = "chat.db"\npath = "{phone.source}"\n'
                      f'[[target]]\nurl = "{phone.target}"\n{encrypt_to}')
    [source] = status(load_config(config), phone.pm)["sources"]
    [shown] = source["targets"]
    assert shown["error"] == report.targets[0].error and shown["failures"] == 1
    assert shown["version"] == 1 and shown["pending_versions"] == 1


def test_status_reaches_neither_into_the_pass_nor_the_daemon():
    tree = ast.parse((ROOT / "syncd" / "daemon" / "status.py").read_text())
    # `from ..sync import …` and `from .run import …` appear as "sync" and "run", `import syncd.sync` as itself.
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not imported & {"sync", "run", "syncd.sync", "syncd.daemon.run"}
