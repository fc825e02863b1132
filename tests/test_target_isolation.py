"""One failing target must not hold back the others: whatever it raises, however long it hangs.

Every target is delivered to at once, in a thread of its own (syncd.delivery.fanout); an error
nobody foresaw (a parse error on a hostile reply, a plugin's ValueError, MemoryError)
becomes that target's one-line failure, with the traceback in the debug log. Real
servers on 127.0.0.1 give the hostile replies: one that answers every request with a
207 whose body is not XML, and one that accepts connections and never answers.
"""

from __future__ import annotations

import http.server
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner

import syncd_webdav
from daemon_rig import Rig, wait_for
from servers import USER, fresh_path
from syncd.cli import main
from syncd.archive.manifest import Manifest
from syncd.plugins import hookimpl, plugin_manager
from syncd.archive.state import SourceState, writer_id
from syncd.sync import sync
from test_local_first import SCHEMA as ONE_MESSAGE

NAME = "chat.db"


# -- hostile targets -------------------------------------------------------------------


class NotXml(http.server.BaseHTTPRequestHandler):
    """An empty WebDAV share, but its listings (207 Multi-Status) have a body no XML parser accepts."""

    def _reply(self, status: int, body: bytes = b""):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PROPFIND(self):
        self._reply(207, b"<multistatus><response>not closed")

    def do_GET(self):
        self._reply(404)  # no manifest yet: a first delivery, which lists what is there

    def log_message(self, *args):
        pass


@pytest.fixture
def not_xml():
    """A WebDAV URL on a server whose every reply is a 207 with a broken XML body."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotXml)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"webdav://{USER}@127.0.0.1:{server.server_address[1]}/{fresh_path()}"
    server.shutdown()
    server.server_close()


class Silent:
    """A server that accepts every connection and never says a word."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.held: list[socket.socket] = []
        self.called = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return  # closed
            self.held.append(conn)
            self.called.set()

    def close(self):
        self.socket.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent():
    server = Silent()
    yield server
    server.close()


class Raising:
    """A storage plugin that fails as no backend should: with a raw exception, not a SyncdError.

    `raising://STAGE/KIND`: STAGE is `open` (from_url raises) or `list` (the first read
    of the target raises); KIND names the exception.
    """

    schemes = ("raising",)
    ERRORS = {"ValueError": lambda: ValueError("Port out of range 0-65535"),
              "OSError": lambda: OSError(5, "Input/output error"),
              "MemoryError": MemoryError}

    def __init__(self, url: str, stage: str, kind: str):
        self.location, self.stage, self.kind = url, stage, kind

    @classmethod
    def from_url(cls, url: str):
        stage, kind = url.removeprefix("raising://").split("/")
        if stage == "open":
            raise cls.ERRORS[kind]()
        return cls(url, stage, kind)

    def fail(self, *args, **kwargs):
        raise self.ERRORS[self.kind]()

    list = open = write = delete = fail

    def close(self):
        pass


class Plugin:
    def __init__(self):
        self.updates: list[tuple[str, int, int]] = []  # (location, version, thread)

    @hookimpl
    def register_backends(self):
        return [Raising]

    @hookimpl
    def target_updated(self, source, location, version):
        self.updates.append((location, version, threading.get_ident()))


@pytest.fixture
def plugin():
    return Plugin()


@pytest.fixture
def pm(plugin):
    pm = plugin_manager()
    pm.register(plugin)
    return pm


@pytest.fixture
def phone(tmp_path):
    (tmp_path / "phone").mkdir()
    source = tmp_path / "phone" / NAME
    db = apsw.Connection(str(source))
    db.execute(ONE_MESSAGE)
    db.close()
    return source


def head(folder: Path) -> int:
    try:
        raw = (folder / NAME / "manifest.json").read_bytes()
    except FileNotFoundError:
        return 0
    return Manifest.from_bytes(raw, str(folder)).head.number


def folders(root: Path, *names: str) -> list[Path]:
    made = [root / name for name in names]
    for folder in made:
        folder.mkdir()
    return made


# -- `syncd sync` --------------------------------------------------------------------------------


# (A ValueError from `from_url` is a URL that can't be parsed: open_backend refuses the command for it.)
@pytest.mark.parametrize("stage, kind", [("open", "OSError"), ("open", "MemoryError"), ("list", "ValueError"),
                                         ("list", "OSError"), ("list", "MemoryError")])
def test_a_target_raising_anything_fails_alone(phone, tmp_path, pm, caplog, stage, kind):
    nas1, nas2 = folders(tmp_path, "nas1", "nas2")
    raising = f"raising://{stage}/{kind}"
    with caplog.at_level(logging.DEBUG, logger="syncd"):
        report = sync(phone, [raising, str(nas1), str(nas2)], state_dir=tmp_path / "state", pm=pm)
    failed, *others = report.targets
    assert (failed.location, failed.ok) == (raising, False)
    assert failed.error.startswith(f"unexpected {kind}") and "\n" not in failed.error and failed.hint
    assert [(t.location, t.ok, t.version) for t in others] == [(str(nas1), True, 1), (str(nas2), True, 1)]
    assert head(nas1) == head(nas2) == 1
    # The traceback is kept, for the debug log only.
    traced = [r for r in caplog.records if r.exc_info and r.levelno == logging.DEBUG]
    assert [type(r.exc_info[1]).__name__ for r in traced] == [kind]


def test_cli_prints_one_line_for_a_target_that_raised(phone, tmp_path, pm, monkeypatch):
    monkeypatch.setattr("syncd.plugins.plugin_manager", lambda: pm)
    [nas] = folders(tmp_path, "nas")
    result = CliRunner().invoke(main, ["sync", str(phone), "--to", "raising://list/MemoryError", "--to", str(nas),
                                 "--state", str(tmp_path / "state")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"{nas}: has version 1" in result.stdout
    assert result.stderr.splitlines() == [
        "  raising://list/MemoryError: FAILED: unexpected MemoryError",
        "    hint: the other targets went on; this one is tried again on the next pass",
        "error: 1 target(s) not updated; version 1 stays queued locally and goes out on the next pass",
    ]


def test_a_webdav_reply_that_is_not_xml_fails_only_that_target(phone, tmp_path, not_xml):
    [nas] = folders(tmp_path, "nas")
    proc = subprocess.run([sys.executable, "-m", "syncd", "sync", str(phone), "--to", not_xml, "--to", str(nas),
                           "--state", str(tmp_path / "state")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{nas}: has version 1" in proc.stdout and head(nas) == 1
    failed = [line.strip() for line in proc.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith(f"{not_xml}: FAILED: "), proc.stderr


def test_a_target_that_never_answers_delays_no_other(phone, tmp_path, pm, silent, monkeypatch):
    timeout = 4.0
    monkeypatch.setattr(syncd_webdav, "REQUEST_TIMEOUT", timeout)
    monkeypatch.setattr("syncd.delivery.retry.RETRY_ATTEMPTS", 1)
    first, alone, beside = folders(tmp_path, "first", "alone", "beside")
    state = tmp_path / "state"
    assert sync(phone, [str(first)], state_dir=state, pm=pm).ok  # version 1, archived locally

    started = time.monotonic()
    assert sync(phone, [str(alone)], state_dir=state, pm=pm).ok
    alone_seconds = time.monotonic() - started

    arrived: list[float] = []
    watcher = threading.Thread(target=lambda: arrived.append(wait_for(lambda: head(beside) and time.monotonic(),
                                                                       timeout=60, what="the folder's version")))
    started = time.monotonic()
    watcher.start()
    report = sync(phone, [f"webdav://{USER}@127.0.0.1:{silent.port}/x", str(beside)], state_dir=state, pm=pm)
    total = time.monotonic() - started
    watcher.join()
    beside_seconds = arrived[0] - started

    assert silent.called.is_set() and not report.targets[0].ok and "timed out" in report.targets[0].error
    assert report.targets[1].ok and total >= timeout  # the silent server really held its delivery that long
    print(f"folder alone {alone_seconds:.2f} s; beside a silent server {beside_seconds:.2f} s (pass {total:.2f} s)")
    assert beside_seconds < alone_seconds + 2.0


def test_hooks_are_called_on_the_calling_thread(phone, tmp_path, pm, plugin):
    targets = folders(tmp_path, "nas1", "nas2", "nas3")
    assert sync(phone, [str(t) for t in targets], state_dir=tmp_path / "state", pm=pm).ok
    assert sorted(plugin.updates) == [(str(t), 1, threading.get_ident()) for t in targets]


def test_a_target_given_twice_gets_one_delivery(phone, tmp_path, pm, plugin):
    [nas] = folders(tmp_path, "nas")
    report = sync(phone, [str(nas), str(nas)], state_dir=tmp_path / "state", pm=pm)
    assert [(t.location, t.ok) for t in report.targets] == [(str(nas), True)]
    assert len(plugin.updates) == 1


def test_deliveries_at_once_agree_on_the_state_dirs_writer_id(tmp_path):
    """Each delivery reads the writer id, and a fresh state dir's first ones make it at the same moment."""
    for round in range(20):
        state_dir = tmp_path / f"state{round}"
        state_dir.mkdir()
        start, ids = threading.Barrier(6), []

        def read():
            start.wait()
            try:
                ids.append(writer_id(state_dir))
            except Exception as e:  # a half-written id, read as damaged
                ids.append(e)

        readers = [threading.Thread(target=read) for _ in range(6)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert len(set(map(str, ids))) == 1 and isinstance(ids[0], str), ids
        assert [p.name for p in state_dir.iterdir()] == ["writer-id"]


# -- the daemon -----------------------------------------------------------------------------------


def daemon_rig(root: Path, *urls: str, folders: int = 1) -> Rig:
    """A Rig whose config lists the targets at `urls` first, before its folders."""
    rig = Rig(root, targets=folders)
    rig.execute(ONE_MESSAGE)
    first = "".join(f'[[target]]\nurl = "{url}"\n' for url in urls)
    rig.config.write_text(rig.config.read_text().replace("[[target]]\n", first + "[[target]]\n", 1))
    return rig


def test_daemon_delivers_past_targets_that_raise(tmp_path, not_xml):
    bad_port = f"webdav://{USER}@127.0.0.1:99999/x"  # passes the config file's syntax, can't be opened
    rig = daemon_rig(tmp_path, bad_port, not_xml)
    rig.start()
    try:
        rig.wait_heads(1, timeout=30)  # on the first pass, not after an error pause of ERROR_RETRY
        rig.execute("INSERT INTO message VALUES (2, 'two')")
        rig.wait_heads(2, timeout=30)
        state = SourceState(rig.state, NAME)
        # Each bad target failed alone, is retried on its own backoff, and said why in one line.
        wait_for(lambda: state.delivery(bad_port).get("failures", 0) >= 2, timeout=30, what=rig.log)
        assert "Port out of range 0-65535" in state.delivery(bad_port)["error"]
        assert state.delivery(not_xml)["failures"] >= 1
        code, seconds = rig.stop()
    finally:
        rig.kill()
    log = rig.log()
    assert code == 0 and "Traceback" not in log and "unexpected error" not in log, log
    assert f"chat.db: {bad_port} not updated: " in log and f"chat.db: {not_xml} not updated: " in log


def test_daemon_a_hung_target_delays_no_other_and_sigterm_still_stops_it(tmp_path, silent):
    # With the real timeouts: the silent server holds its delivery for minutes.
    rig = daemon_rig(tmp_path, f"webdav://{USER}@127.0.0.1:{silent.port}/x", folders=2)
    rig.start()
    try:
        rig.wait_heads(1, timeout=30)
        wait_for(silent.called.is_set, what="a request to the silent server")  # and it is still waiting
        code, seconds = rig.stop(signal.SIGTERM)
    finally:
        rig.kill()
    log = rig.log()
    assert code == 0 and seconds < 10, log
    assert "stopped in the middle of a step" in log
