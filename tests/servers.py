"""Real storage servers on 127.0.0.1 for the tests: WsgiDAV, and rclone serving WebDAV, S3 and SFTP.

Each runs as a child process on a free port, started once per session and
stopped at its end; a test that kills one (a server going down mid-upload)
restarts it on the same port. Credentials come the way users give them:
`$NETRC` for WebDAV, `$RCLONE_CONFIG` for rclone.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from syncd_rclone import rclone_binary

USER = "syncd"
PASSWORD = "dav-Pw-7c1e5b0f"  # distinctive, so a leak into a message is easy to find
S3_KEY, S3_SECRET = "syncdkey", "s3-Secret-4a9d2e"
START_TIMEOUT = 20.0
DAV_SERVER = Path(__file__).with_name("dav_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on a fixed loopback port that can be killed and started again."""

    def __init__(self, command: list[str], port: int, log: Path):
        self.command, self.port, self.log = command, port, log
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:3]} exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.command[:3]} is not listening on {self.port} after {START_TIMEOUT} s")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class DavServer(Server):
    """WsgiDAV with its fault injector (see dav_server.py)."""

    def url(self, path: str = "", scheme: str = "webdav", user: str = USER) -> str:
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{path}"

    def fault(self, status: str | None, count: int = 1_000_000, methods: str = "", delay: float = 0.0) -> None:
        params = {"status": status or "", "count": count, "methods": methods, "delay": delay}
        httpx.post(f"http://127.0.0.1:{self.port}/_fault", params=params).raise_for_status()

    def stats(self, reset: bool = False) -> dict[str, int]:
        method = httpx.post if reset else httpx.get
        return method(f"http://127.0.0.1:{self.port}/_stats").json()


@pytest.fixture(scope="session")
def server_root(tmp_path_factory):
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session", autouse=True)
def credentials(server_root):
    """A netrc for the WebDAV servers, as `$NETRC`, for the whole session."""
    netrc = server_root / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NETRC", str(netrc))
        yield netrc


def start_dav(server_root: Path, name: str) -> DavServer:
    root = server_root / name
    root.mkdir(exist_ok=True)
    port = free_port()
    command = [sys.executable, str(DAV_SERVER), str(root), str(port), USER, PASSWORD]
    return DavServer(command, port, server_root / f"{name}.log").start()


@pytest.fixture(scope="session")
def wsgidav(server_root):
    server = start_dav(server_root, "wsgidav")
    yield server
    server.stop()


@pytest.fixture
def fresh_dav(server_root):
    """A WsgiDAV server of the test's own, which it may kill and restart."""
    server = start_dav(server_root, f"dav-{uuid.uuid4().hex[:8]}")
    yield server
    server.stop()


def rclone(*args: str) -> str:
    return subprocess.run([rclone_binary(), *args], check=True, capture_output=True, text=True).stdout.strip()


def start_rclone(server_root: Path, kind: str, *options: str) -> Server:
    root = server_root / f"rclone-{kind}"
    root.mkdir(exist_ok=True)
    port = free_port()
    command = [rclone_binary(), "serve", kind, str(root), "--addr", f"127.0.0.1:{port}", *options,
               "--config", "/dev/null", "--cache-dir", str(server_root / f"cache-{kind}")]
    return Server(command, port, server_root / f"rclone-{kind}.log").start()


@pytest.fixture(scope="session")
def rclone_webdav(server_root):
    server = start_rclone(server_root, "webdav", "--user", USER, "--pass", PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rclone_remotes(server_root):
    """`rclone serve s3` and `rclone serve sftp`, as remotes `s3test` and `sftptest` in `$RCLONE_CONFIG`."""
    s3 = start_rclone(server_root, "s3", "--auth-key", f"{S3_KEY},{S3_SECRET}")
    (server_root / "rclone-s3" / "bucket").mkdir()
    sftp = start_rclone(server_root, "sftp", "--user", USER, "--pass", PASSWORD)
    config = server_root / "rclone.conf"
    config.write_text(
        f"[s3test]\ntype = s3\nprovider = Rclone\nendpoint = http://127.0.0.1:{s3.port}\n"
        f"access_key_id = {S3_KEY}\nsecret_access_key = {S3_SECRET}\nforce_path_style = true\n\n"
        f"[sftptest]\ntype = sftp\nhost = 127.0.0.1\nport = {sftp.port}\nuser = {USER}\n"
        f"pass = {rclone('obscure', PASSWORD)}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RCLONE_CONFIG", str(config))
        yield {"s3": s3, "sftp": sftp}
    s3.stop()
    sftp.stop()


def fresh_path() -> str:
    """A folder name no other test uses, so each test starts from an empty target."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def closed_port():
    return free_port()  # nothing listens there

