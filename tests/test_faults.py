"""Faults against real servers: outages mid-upload, 500/507/timeouts, wrong credentials, concurrent restores."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner
from servers import PASSWORD, USER, fresh_path
from test_local_first import add_message, phone  # noqa: F401 - `phone` is a fixture: a one-table chat db

import syncd_webdav
from syncd.archive import plain as archive_module
from syncd.archive.plain import Archive
from syncd.cli import main
from syncd.errors import CorruptObject, NotFound, TransientError
from syncd.readback.restore import restore
from syncd.delivery.retry import RetryingBackend
from syncd.testing import MemoryBackend
from syncd_webdav import WebDAVBackend


def test_webdav_down_midway_catches_up_while_the_folder_gets_everything(phone, fresh_dav):
    dav = fresh_dav.url(fresh_path())
    targets = [str(phone.target), dav]
    assert phone.sync(targets).ok
    fresh_dav.kill()
    for n in (2, 3):
        add_message(phone, n)
        report = phone.sync(targets)
        assert report.version.number == n
        assert report.targets[0].ok and report.targets[0].version == n
        assert not report.targets[1].ok and report.targets[1].version == 1
        assert "failed" in report.targets[1].error and PASSWORD not in report.targets[1].error
    fresh_dav.start()
    report = phone.sync(targets)  # nothing new on the phone: only the catch-up
    assert report.version is None and report.ok
    assert report.targets[1].version == 3 and report.targets[1].bytes > 0 and report.targets[0].bytes == 0
    phone.check_all_versions(dav)
    # And from the WebDAV target alone, as on a fresh machine, through the command line.
    out = phone.root / "fresh-machine.db"
    result = CliRunner().invoke(main, ["restore", "--from", dav, "--version", "2", str(out)])
    assert result.exit_code == 0, result.output
    assert read_messages(out) == messages_up_to(2)


class KillMidway(io.BytesIO):
    """Object bytes that kill the server once the upload is under way."""

    def __init__(self, data: bytes, server, after: int):
        super().__init__(data)
        self.server, self.after, self.killed = server, after, False

    def read(self, size=-1):
        if not self.killed and self.tell() >= self.after:
            self.killed = True
            self.server.kill()
        return super().read(size)


def test_server_down_during_an_upload_then_back(fresh_dav):
    backend = WebDAVBackend.from_url(fresh_dav.url(fresh_path()))
    backend.write("src/objects/old", io.BytesIO(b"old"))
    data = bytes(range(256)) * (16 << 10)  # 4 MiB, written in 1 MiB chunks
    stream = KillMidway(data, fresh_dav, after=2 << 20)
    with pytest.raises(TransientError, match="failed"):
        backend.write("src/objects/new", stream)
    fresh_dav.start()
    assert [i.name for i in backend.list("")] == ["src/objects/old"], "the interrupted upload shows"
    # With the retry wrapper, the same outage costs nothing: the server is back by the second try.
    restarts = []
    retrying = RetryingBackend(backend, sleep=lambda _: restarts.append(fresh_dav.start()))
    retrying.write("src/objects/new", KillMidway(data, fresh_dav, after=2 << 20))
    assert len(restarts) == 1
    with backend.open("src/objects/new") as f:
        assert f.read() == data
    assert [i.name for i in backend.list("")] == ["src/objects/new", "src/objects/old"]


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_passing_faults_are_ridden_out_by_retries(phone, wsgidav, monkeypatch, caplog, fault):
    monkeypatch.setattr(syncd_webdav, "REQUEST_TIMEOUT", 0.5)
    dav = wsgidav.url(fresh_path())
    wsgidav.stats(reset=True)
    wsgidav.fault(fault, count=2, methods="PUT", delay=1.5)
    try:
        report = phone.sync([dav])
    finally:
        wsgidav.fault(None)
    assert report.ok, report.targets[0].error
    assert wsgidav.stats().get(fault) == 2
    assert caplog.text.count("try 2 of") == 1 and caplog.text.count("try 3 of") == 1
    assert PASSWORD not in caplog.text
    phone.check_all_versions(dav)


def test_full_server_fails_once_with_a_hint(phone, wsgidav):
    dav = wsgidav.url(fresh_path())
    wsgidav.stats(reset=True)
    wsgidav.fault("507", methods="PUT")
    try:
        report = phone.sync([dav])
    finally:
        wsgidav.fault(None)
    target = report.targets[0]
    assert not target.ok and "out of space" in target.error and "queued locally" in target.hint
    assert wsgidav.stats().get("507") == 1, "a full server was asked again"
    assert phone.sync([dav]).ok  # space freed: the queued version goes out


def test_wrong_credentials_give_one_clear_error_and_exit_1(phone, wsgidav, tmp_path, monkeypatch):
    wrong = "wrong-Pw-51aa0c"
    (tmp_path / "netrc").write_text(f"machine 127.0.0.1 login {USER} password {wrong}\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    wsgidav.stats(reset=True)
    result = CliRunner().invoke(main, ["sync", str(phone.source), "--to", wsgidav.url(fresh_path()),
                                       "--state", str(phone.state)])
    assert result.exit_code == 1
    assert result.output.count("authentication failed") == 1, result.output
    assert "~/.netrc" in result.output and wrong not in result.output and PASSWORD not in result.output
    assert wsgidav.stats() == {"401": 1}, "credentials were tried more than once"


WRITER = textwrap.dedent("""
    import sys, apsw
    from syncd.plugins import plugin_manager
    from syncd.sync import sync
    source, state, target, last = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pm = plugin_manager()
    for n in range(2, last + 1):
        db = apsw.Connection(source)
        db.execute("INSERT INTO message VALUES (?, ?)", (n, f"message {n}"))
        db.close()
        assert sync(source, [target], state_dir=state, pm=pm).ok
""")


def read_messages(path: Path) -> list[str]:
    db = apsw.Connection(str(path))
    try:
        return [row[0] for row in db.execute("SELECT body FROM message ORDER BY id")]
    finally:
        db.close()


def messages_up_to(version: int) -> list[str]:
    """What version N of the `phone` fixture's database holds, after `add_message` for 2..N."""
    return ["hello"] + [f"message {n}" for n in range(2, version + 1)]


def test_restore_while_another_machine_writes_reads_a_consistent_version(phone, wsgidav):
    dav = wsgidav.url(fresh_path())
    assert phone.sync([dav]).ok
    last = 12
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(phone.source), str(phone.state), dav, str(last)],
                              stderr=subprocess.PIPE, text=True)
    restored = []
    try:
        while writer.poll() is None:
            out = phone.root / f"restore-{len(restored)}.db"
            version = restore(phone.archive(dav), out)
            assert read_messages(out) == messages_up_to(version.number)
            restored.append(version.number)
    finally:
        _, errors = writer.communicate(timeout=120)
    assert writer.returncode == 0, errors
    assert len(set(restored)) >= 2, f"the restores never overlapped the writer: {restored}"
    assert restored == sorted(restored)
    assert restore(phone.archive(dav), phone.root / "final.db").number == last


class ManifestGap(MemoryBackend):
    """A store caught between deleting the old manifest and moving the new one in, `gap` reads long."""

    gap = 2

    def open(self, name, limit=None):
        if name.endswith("manifest.json") and self.gap:
            self.gap -= 1
            raise NotFound(f"{name} is missing from {self.location}")
        return super().open(name, limit)


def test_a_reader_waits_out_a_manifest_being_replaced(phone, monkeypatch):
    monkeypatch.setattr(archive_module, "MANIFEST_GAP_WAIT", 0.01)
    store = f"gap-{fresh_path()}"
    assert phone.sync([f"memory://{store}"]).ok
    gapped = ManifestGap(store)
    assert Archive(gapped, phone.source.name).manifest().head.number == 1
    assert gapped.gap == 0
    empty = ManifestGap(f"empty-{fresh_path()}")
    assert Archive(empty, "chat.db").manifest() is None and empty.gap == 1, "an empty target was waited on"
    MemoryBackend.forget(store)


class TornManifest:
    """A store whose replace can tear a read, as rclone serve webdav's does: the first `torn`
    reads of a manifest get its bytes cut short."""

    def __init__(self, inner, torn: int):
        self.inner, self.torn = inner, torn

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def open(self, name, limit=None):
        with self.inner.open(name, limit) as f:
            data = f.read()
        if "manifest" in name and self.torn:
            self.torn -= 1
            data = data[: len(data) // 2]
        return io.BytesIO(data)


def test_a_reader_reads_a_torn_manifest_again(phone, monkeypatch):
    monkeypatch.setattr(archive_module, "MANIFEST_GAP_WAIT", 0.01)
    store = f"torn-{fresh_path()}"
    assert phone.sync([f"memory://{store}"]).ok
    torn = TornManifest(MemoryBackend(store), torn=archive_module.MANIFEST_TORN_RETRIES)
    assert Archive(torn, phone.source.name).manifest().head.number == 1
    assert torn.torn == 0
    damaged = TornManifest(MemoryBackend(store), torn=archive_module.MANIFEST_TORN_RETRIES + 1)
    with pytest.raises(CorruptObject, match="not a readable manifest"):
        Archive(damaged, phone.source.name).manifest()
    MemoryBackend.forget(store)
