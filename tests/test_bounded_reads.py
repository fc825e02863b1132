"""Nothing read from a target is unbounded: not in memory, not on disk, not in time.

Real parts: the `syncd` CLI in a child process (with a timeout, a memory limit and a file
size limit, so a regression fails the test instead of the machine), folder targets holding
a symlink to /dev/zero or a FIFO, a hostile HTTP server on 127.0.0.1 (an endless chunked
body, a trickle), a zstd bomb behind a forged manifest, an object longer than recorded.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import apsw
import pytest
import zstandard

import syncd.backend
import syncd.archive.codec
import syncd.archive.manifest
import syncd_webdav
from syncd.errors import CorruptObject, PermanentError, TooLarge, TransientError
from syncd.archive.manifest import Manifest, ObjectRef
from syncd.samples import create_wechat
from syncd_folder import FolderBackend
from syncd_rclone import RcloneBackend
from syncd_webdav import WebDAVBackend

SYNCD = [sys.executable, "-m", "syncd"]
SOURCE = "chat"
CHILD_TIMEOUT = 60.0
CHILD_MEMORY = 2 << 30  # address space a child may map: a runaway read fails instead of swapping
CHILD_FILE_SIZE = 512 << 20  # the largest file a child may write: a runaway download fails fast
BOMB_SIZE = 1 << 30


@dataclass
class Run:
    code: int | None  # None: killed at the timeout
    output: str
    seconds: float
    peak_mib: float


def run_syncd(args: list[str], tmp_path: Path, timeout: float = CHILD_TIMEOUT) -> Run:
    """Run the CLI in a child process; its exit code, output, wall time and peak memory."""
    tmp = tmp_path / "child-tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "NETRC": str(tmp_path / "no-netrc")}

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
        resource.setrlimit(resource.RLIMIT_FSIZE, (CHILD_FILE_SIZE, CHILD_FILE_SIZE))

    log = tmp_path / "child.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        child = subprocess.Popen([*SYNCD, *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, preexec_fn=limits)
    code, usage = None, None
    while time.monotonic() - started < timeout:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.05)
    else:
        child.kill()
        _, _, usage = os.wait4(child.pid, 0)
    child.returncode = code  # reaped here, not by Popen
    return Run(code, log.read_text(errors="replace"), time.monotonic() - started, usage.ru_maxrss / 1024)


@pytest.fixture
def archived(tmp_path) -> Path:
    """A folder target holding one version of a small chat database, source `chat`."""
    db, target = tmp_path / "phone.db", tmp_path / "nas"
    create_wechat(db, messages=200)
    target.mkdir()
    done = subprocess.run([*SYNCD, "sync", str(db), "--to", str(target), "--name", SOURCE,
                           "--state", str(tmp_path / "state")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return target


def replace_manifest(target: Path, make) -> None:
    manifest = target / SOURCE / "manifest.json"
    manifest.unlink()
    make(manifest)


# -- folder targets: what isn't a regular file is never read --------------------


@pytest.mark.parametrize("command", ["log", "verify", "sync"])
@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "fifo"])
def test_a_manifest_that_is_not_a_file_is_refused_at_once(archived, tmp_path, command, kind):
    replace_manifest(archived, os.mkfifo if kind == "fifo" else lambda path: path.symlink_to("/dev/zero"))
    args = {"log": ["log", "--from", str(archived)],
            "verify": ["verify", "--from", str(archived)],
            "sync": ["sync", str(tmp_path / "phone.db"), "--to", str(archived), "--name", SOURCE,
                     "--state", str(tmp_path / "state")]}[command]
    run = run_syncd(args, tmp_path)
    assert run.code is not None, f"`syncd {command}` hung on a {kind} ({run.seconds:.0f} s)"
    assert run.code != 0 and "not a regular file" in run.output, run.output
    assert "Traceback" not in run.output and run.seconds < 30


def test_folder_open_refuses_what_is_not_a_regular_file(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "zero").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "src" / "fifo")
    (tmp_path / "src" / "file").write_bytes(b"ok")
    backend = FolderBackend(tmp_path)
    # Listed, so a problem can name them; never opened.
    assert [i.name for i in backend.list("src/")] == ["src/fifo", "src/file", "src/zero"]
    for name in ("src/zero", "src/fifo"):
        with pytest.raises(PermanentError, match="not a regular file"):
            backend.open(name)
    with backend.open("src/file") as f:
        assert f.read() == b"ok"


# -- objects: never more than recorded, never decoded without bound ---------------


def test_an_object_longer_than_recorded_is_not_downloaded(archived, tmp_path):
    base = next((archived / SOURCE / "objects").glob("*-base-*"))
    recorded = base.stat().st_size
    os.truncate(base, recorded + (4 << 30))  # 4 GiB more, sparse: costs the test nothing
    run = run_syncd(["verify", "--from", str(archived)], tmp_path)
    assert run.code == 1 and "longer than the manifest records" in run.output, run.output
    assert run.seconds < 30
    run = run_syncd(["restore", "--from", str(archived), str(tmp_path / "out.db")], tmp_path)
    assert run.code == 1 and "longer than the manifest records" in run.output, run.output


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A zstd frame of about 32 KiB that expands to 1 GiB of zeros."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(BOMB_SIZE >> 20)) + compressor.flush()


def forge_base(target: Path, data: bytes) -> None:
    """Make `data` the base of version 1, with a manifest whose sizes, hashes and chain all agree."""
    folder = target / SOURCE
    manifest = Manifest.from_bytes((folder / "manifest.json").read_bytes(), "test")
    sha256 = hashlib.sha256(data).hexdigest()
    ref = ObjectRef(f"objects/0000000001-base-{sha256[:32]}.zst", len(data), sha256, "zstd")
    (folder / ref.name).write_bytes(data)
    first = replace(manifest.versions[0], base=ref)
    first = replace(first, hash=first.chained_hash())
    (folder / "manifest.json").write_bytes(replace(manifest, versions=(first,)).to_bytes())


@pytest.mark.parametrize("command", ["verify", "restore"])
def test_a_zstd_bomb_is_stopped_at_the_decode_cap(archived, tmp_path, bomb, command):
    forge_base(archived, bomb)
    args = ["verify", "--from", str(archived)] if command == "verify" else \
        ["restore", "--from", str(archived), str(tmp_path / "out.db")]
    run = run_syncd(args, tmp_path)
    assert run.code == 1 and "expands to more than" in run.output, run.output
    assert syncd.archive.codec.decoded_limit(len(bomb)) < BOMB_SIZE  # the cap, not the disk, stopped it
    assert not (tmp_path / "out.db").exists()


def test_decoding_stops_at_the_cap_before_writing_past_it(bomb):
    out = io.BytesIO()
    with pytest.raises(CorruptObject, match="expands to more than"):
        syncd.archive.codec.decode(io.BytesIO(bomb), out, syncd.archive.codec.ZSTD, "bomb")
    assert len(out.getvalue()) == syncd.archive.codec.decoded_limit(len(bomb))


# -- a hostile HTTP server --------------------------------------------------------


class HostileDAV:
    """A WebDAV server on 127.0.0.1 listing one source whose manifest it then serves badly.

    `how`: "endless" (a chunked body that never ends), "trickle" (one body byte every
    `pause` s), "trickle-headers" (the status line and headers, one byte every `pause` s),
    "endless-listing" (a PROPFIND answer that never ends).
    """

    def __init__(self, how: str, pause: float = 0.5):
        self.how, self.pause = how, pause
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, scheme: str = "webdav") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/dav"

    def close(self) -> None:
        self.stopped.set()
        self.server.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536) or b"\r\n\r\n"
                method, path = head.split(b" ")[:2]
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                body = head.split(b"\r\n\r\n", 1)[1]
                while length and len(body) < length[0]:
                    body += conn.recv(65536)
                if method == b"PROPFIND":
                    self._listing(conn, path.decode())
                elif method == b"GET" and path.endswith(b"/manifest.json"):
                    self._manifest(conn)
                else:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass  # the client gave up, as it should

    def _listing(self, conn: socket.socket, path: str) -> None:
        entry = ('<d:response><d:href>{}</d:href><d:propstat><d:prop><d:resourcetype>{}</d:resourcetype>'
                 '<d:getcontentlength>{}</d:getcontentlength></d:prop><d:status>HTTP/1.1 200 OK</d:status>'
                 '</d:propstat></d:response>')
        manifest = entry.format("/dav/src/manifest.json", "", 100)
        if path.rstrip("/") == "/dav":
            items = [entry.format("/dav/", "<d:collection/>", 0), entry.format("/dav/src/", "<d:collection/>", 0)]
        elif path.endswith("/manifest.json"):
            items = [manifest]  # rclone looks at the object itself first
        else:
            items = [entry.format("/dav/src/", "<d:collection/>", 0), manifest]
        xml = ('<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">' + "".join(items) + "</d:multistatus>").encode()
        if self.how == "endless-listing":
            conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nTransfer-Encoding: chunked\r\n\r\n")
            self._endless(conn, b"<!--" + b"x" * 65536)
        conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: "
                     + str(len(xml)).encode() + b"\r\nConnection: close\r\n\r\n" + xml)

    def _manifest(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        if self.how == "trickle-headers":
            for byte in head:
                if self.stopped.wait(self.pause):
                    return
                conn.sendall(bytes([byte]))
        conn.sendall(head)
        if self.how == "endless":
            self._endless(conn, b'{"versions": [' + b" " * 65536)
        while not self.stopped.wait(self.pause):
            conn.sendall(b"1\r\n \r\n")

    def _endless(self, conn: socket.socket, chunk: bytes) -> None:
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while not self.stopped.is_set():
            conn.sendall(framed)


@pytest.fixture
def hostile():
    servers = []

    def start(how: str, pause: float = 0.5) -> HostileDAV:
        servers.append(HostileDAV(how, pause))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_log_stops_reading_an_endless_manifest(hostile, tmp_path):
    server = hostile("endless")
    run = run_syncd(["log", "--from", server.url()], tmp_path)
    assert run.code is not None, "syncd log kept reading an endless manifest"
    assert run.code == 1 and "is larger than" in run.output and "manifest.json" in run.output, run.output
    print(f"syncd log against an endless manifest: {run.seconds:.1f} s, peak RSS {run.peak_mib:.0f} MiB")
    assert run.peak_mib < 600


def test_an_endless_listing_stops_at_its_cap(hostile, monkeypatch):
    monkeypatch.setattr(syncd_webdav, "LISTING_MAX_BYTES", 1 << 20)
    backend = WebDAVBackend.from_url(hostile("endless-listing").url())
    with pytest.raises(TooLarge):
        backend.list("")


def call_with_timeout(call, timeout: float):
    """(what `call` raised, seconds it took); None for a call still running at `timeout`."""
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            call()
            outcome["error"] = None
        except Exception as e:  # noqa: BLE001 - the test inspects it
            outcome["error"] = e
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome.get("error"), outcome.get("seconds")


@pytest.mark.parametrize("how", ["trickle", "trickle-headers"])
def test_a_trickling_server_fails_at_the_deadline(hostile, monkeypatch, how):
    monkeypatch.setattr(syncd.backend, "DEADLINE_BASE", 2.0)
    backend = WebDAVBackend.from_url(hostile(how, pause=0.3).url())
    error, seconds = call_with_timeout(lambda: backend.open("src/manifest.json"), 20)
    assert seconds is not None, "a server sending a byte every 0.3 s held the read for 20 s"
    assert isinstance(error, TransientError) and "timed out" in str(error), error
    print(f"{how}: failed after {seconds:.1f} s (deadline 2 s)")
    assert 1.5 < seconds < 5


def test_rclone_reads_stop_at_the_limit(hostile):
    server = hostile("endless")
    backend = RcloneBackend.from_url(f"rclone::webdav,url='http://127.0.0.1:{server.port}/dav':")
    with pytest.raises(TooLarge):
        backend.open("src/manifest.json", limit=1 << 20)


def test_an_rclone_process_has_a_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(syncd.backend, "DEADLINE_BASE", 1.0)
    stuck = tmp_path / "rclone"
    stuck.write_text("#!/bin/sh\nexec sleep 30\n")  # a remote that never answers, as rclone waits on it
    stuck.chmod(0o755)
    backend = RcloneBackend("remote", "path")
    backend.binary = str(stuck)
    error, seconds = call_with_timeout(lambda: backend.list(""), 20)
    assert isinstance(error, TransientError) and "timed out" in str(error), error
    assert seconds < 5


# -- a manifest within the cap that would cost many times its size to parse --------


def test_a_manifest_of_tiny_values_is_refused_unparsed(archived, tmp_path):
    # 127 MiB of `{},` is a valid JSON array just under the cap: parsed, it took 3.4 GB.
    replace_manifest(archived, lambda path: path.write_bytes(b"[" + b"{}," * ((127 << 20) // 3) + b"{}]"))
    run = run_syncd(["log", "--from", str(archived)], tmp_path)
    assert run.code == 1 and "too many JSON values for its size" in run.output, run.output
    assert "Traceback" not in run.output
    assert run.peak_mib < 1024, f"peak {run.peak_mib:.0f} MiB"


def test_a_long_history_is_not_taken_for_a_dense_manifest():
    manifest = Manifest(SOURCE)
    for number in range(1, 5001):
        digest = hashlib.sha256(str(number).encode()).hexdigest()
        kind = "base" if number == 1 else "delta"
        ref = ObjectRef(f"objects/{number:010d}-{kind}-{digest[:32]}.zst", 100, digest, "zstd")
        manifest = manifest.append({"added": 1, "changed": 0, "deleted": 0}, **{kind: ref})
    raw = manifest.to_bytes()
    assert len(raw) > syncd.archive.manifest.DENSE_FLOOR
    assert Manifest.from_bytes(raw, "manifest.json") == manifest


@pytest.mark.parametrize("command", ["verify", "sync"])
def test_a_folder_swapped_for_a_symlink_is_not_followed(archived, tmp_path, command):
    """A symlinked `objects/` would take reads (and writes) to wherever it points."""
    elsewhere = tmp_path / "elsewhere"
    objects = archived / SOURCE / "objects"
    objects.rename(elsewhere)
    objects.symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    db = tmp_path / "phone.db"
    phone = apsw.Connection(str(db))
    phone.execute("CREATE TABLE extra(x)")  # something new to send, for sync
    phone.close()
    args = {"verify": ["verify", "--from", str(archived)],
            "sync": ["sync", str(db), "--to", str(archived), "--name", SOURCE, "--state", str(tmp_path / "state")]}
    run = run_syncd(args[command], tmp_path)
    assert run.code == 1 and "is a symlink, not a folder" in run.output, run.output
    assert "Traceback" not in run.output
    assert sorted(p.name for p in elsewhere.iterdir()) == before
