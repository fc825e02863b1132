"""Secrets stay out of argv, output, logs and state files; the state dir is private whatever the umask.

Real parts throughout: `rclone serve webdav` and WsgiDAV with passwords, real rclone children
(whose command line is read from /proc), the real CLI and a real daemon process.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_rig import Rig, wait_for
from servers import PASSWORD, USER, rclone
from test_local_first import add_message, phone  # noqa: F401 - `phone` is a fixture: a one-table chat db

import syncd_rclone
from syncd.archive import crypto
from syncd.archive.plain import Archive
from syncd.redact import read_remote, redact_url
from syncd.capture.snapshot import SnapshotStore
from syncd.sync import sync
from syncd.delivery.target import Target
from syncd_rclone import RcloneBackend, rclone_binary

# -- item 8: connection-string secrets ------------------------------------------------------


@pytest.mark.parametrize("url, shown", [
    ("rclone::webdav,url='http://h:1',user=me,pass=SECRET:chats", "rclone::webdav,url='http://h:1',user=me,pass=***:chats"),
    ("rclone::webdav,url=http://127.0.0.1:8080,user=me,pass=SECRET:chats",
     "rclone::webdav,url=http://127.0.0.1:8080,user=me,pass=***:chats"),
    ("rclone::webdav,url=http://me:SECRET@h:8080/dav,user=me:x", "rclone::webdav,url=http://me:***@h:8080/dav,user=me:x"),
    ("rclone::s3,secret_access_key='SEC''RET',endpoint=\"http://h:9000\":b/p",
     "rclone::s3,secret_access_key=***,endpoint=\"http://h:9000\":b/p"),
    ("rclone:named,bearer_token=SECRET:p", "rclone:named,bearer_token=***:p"),
    ("rclone::webdav,url='http://h/?access_token=SECRET&x=1':p", "rclone::webdav,url='http://h/?access_token=***&x=1':p"),
    ("webdav://me:SEC@RET@host:8080/x?token=SECRET&y=1", "webdav://me:***@host:8080/x?token=***&y=1"),
    ("rclone::webdav,pass='SECRET", "rclone:***"),  # unreadable: nothing of it is shown
    ("/mnt/nas/chat-archive", "/mnt/nas/chat-archive"),
    ("rclone:gdrive:backup/chats", "rclone:gdrive:backup/chats"),
])
def test_one_redaction_for_every_url_form(url, shown):
    assert redact_url(url) == shown
    assert "SEC" not in redact_url(url)


def test_an_unquoted_url_keeps_its_port():
    remote, path = read_remote(":webdav,url=http://127.0.0.1:8080/dav,user=me,pass=X:chats/a")
    assert remote.params == {"url": "http://127.0.0.1:8080/dav", "user": "me", "pass": "X"}
    assert path == "chats/a"
    backend = RcloneBackend.from_url("rclone::webdav,url=http://127.0.0.1:8080,user=me:chats")
    assert backend.location == "rclone::webdav,url=http://127.0.0.1:8080,user=me:chats"


@pytest.fixture(params=["unquoted", "quoted"])
def rclone_url(rclone_webdav, request):
    """An on-the-fly rclone WebDAV remote with its (obscured) password in the connection string;
    its URL unquoted (which needs the colons parsed right) or quoted."""
    obscured = rclone("obscure", PASSWORD)
    server = f"http://127.0.0.1:{rclone_webdav.port}"
    server = f"'{server}'" if request.param == "quoted" else server
    return f"rclone::webdav,url={server},vendor=other,user={USER},pass={obscured}:chats-{os.urandom(4).hex()}", obscured


def test_rclone_children_get_secrets_through_their_environment(phone, rclone_url, tmp_path, monkeypatch):
    url, obscured = rclone_url
    record = tmp_path / "children"
    wrapper = tmp_path / "rclone"
    # What `ps` shows of each child (its /proc/PID/cmdline, readable by every local user), and
    # who may read its environment.
    wrapper.write_text(f'#!/bin/sh\n{{ tr "\\0" " " < /proc/$$/cmdline; echo; stat -c "environ %a" /proc/$$/environ; }}'
                       f' >> {record}\nexec {rclone_binary()} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(syncd_rclone, "rclone_binary", lambda: str(wrapper))
    for n in (2, 3):
        assert phone.sync([url]).ok
        add_message(phone, n)
    report = phone.sync([url])
    assert report.ok and report.targets[0].version == 3
    phone.check_all_versions(url)  # the password reached rclone: the server refuses anyone else
    seen = record.read_text()
    assert seen.count("copyto") >= 3 and "syncd_inline:chats-" in seen
    assert obscured not in seen and PASSWORD not in seen and "pass=" not in seen
    assert set(line for line in seen.splitlines() if line.startswith("environ")) == {"environ 400"}


def test_a_plain_password_gets_one_line_naming_obscure(rclone_webdav):
    backend = RcloneBackend.from_url(f"rclone::webdav,url=http://127.0.0.1:{rclone_webdav.port},user={USER},"
                                     f"pass={PASSWORD}:x")
    with pytest.raises(syncd_rclone.PermanentError) as caught:
        backend.list("")
    assert "rclone obscure" in caught.value.hint
    assert PASSWORD not in str(caught.value) + caught.value.hint


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syncd", *args], capture_output=True, text=True, timeout=120)


def test_no_secret_in_config_check_verify_status_logs_or_state(tmp_path, rclone_url, wsgidav):
    url, obscured = rclone_url
    rig = Rig(tmp_path, targets=1)
    rig.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, text TEXT)")
    rig.execute("INSERT INTO message VALUES (1, 'hello')")
    wrong = rclone("obscure", "wrong-Pw-0b9e")
    with open(rig.config, "a") as config:
        config.write(f"[[target]]\nurl = \"{url}\"\n"
                     f"[[target]]\nurl = \"{url.replace(obscured, wrong)}-denied\"\n"
                     f"[[target]]\nurl = \"{wsgidav.url('opts-' + os.urandom(4).hex())}\"\n"
                     f"options = {{ password = \"{PASSWORD}\" }}\n")
    secrets = (obscured, wrong, PASSWORD)
    checked = _cli("config", "check", "--config", str(rig.config))
    assert checked.returncode == 0, checked.stderr
    assert "pass=***" in checked.stdout and "http://127.0.0.1:" in checked.stdout
    try:
        rig.start()
        rig.wait_heads(1)
        wait_for(lambda: "rclone::webdav" in rig.log() and "authentication failed" in rig.log(),
                 what=lambda: f"the rclone targets to be tried\n{rig.log()}")
        wait_for(lambda: all(t["version"] == 1 for s in rig.status()["sources"] for t in s["targets"]
                             if "denied" not in t["url"]), what=lambda: f"every other target to be served\n{rig.log()}")
        status = _cli("status", "--json", "--config", str(rig.config))
        verified = _cli("verify", "--config", str(rig.config))
        verified_json = _cli("verify", "--json", "--config", str(rig.config))
    finally:
        rig.kill()
    shown = {"config check": checked.stdout + checked.stderr, "status --json": status.stdout + status.stderr,
             "verify": verified.stdout + verified.stderr, "verify --json": verified_json.stdout + verified_json.stderr,
             "the daemon's log": rig.log()}
    shown |= {str(p): p.read_text(errors="replace") for p in rig.state.rglob("*.json")}
    assert json.loads(status.stdout)["sources"][0]["targets"][1]["location"].count("pass=***") == 1
    assert "pass=***" in verified.stdout and "1 versions" in verified.stdout
    for where, text in shown.items():
        for secret in secrets:
            assert secret not in text, f"{where} shows a secret:\n{text}"


# -- item 9: the state dir is private whatever the umask --------------------------------------


@pytest.fixture
def umask_022():
    """The usual umask, under which new files are 0644 and folders 0755 unless syncd says otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def loose_modes(*roots: Path) -> dict[str, str]:
    """Every folder not 0700 and file not 0600 below (and including) `roots`, with its mode."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                found[str(path)] = oct(stat.S_IMODE(st.st_mode))
    return found


def test_every_state_file_is_private_under_umask_022(phone, tmp_path, monkeypatch, umask_022):
    # The phone's app keeps its database open in WAL mode: each pass copies the -wal beside the replica.
    app = phone.connect()
    app.execute("PRAGMA journal_mode=wal")
    app.execute("INSERT INTO message VALUES (100, 'only in the -wal')")
    assert Path(f"{phone.source}-wal").stat().st_size
    identity = tmp_path / "owner.txt"
    sealed_target = Target(str(tmp_path / "sealed"), (crypto.keygen(identity),))
    (tmp_path / "sealed").mkdir()
    # Look in the middle of each pass too, where the staging copies and scratch files exist.
    mid_pass: dict[str, str] = {}

    def look_first(real):
        def looking(*args, **kwargs):
            mid_pass.update(loose_modes(phone.state))
            return real(*args, **kwargs)
        return looking

    monkeypatch.setattr(SnapshotStore, "_checkpoint", look_first(SnapshotStore._checkpoint))
    monkeypatch.setattr(Archive, "put", look_first(Archive.put))
    for n in (2, 3):
        assert sync(phone.source, [str(phone.target), sealed_target], state_dir=phone.state, pm=phone.pm).ok
        add_message(phone, n)
    # A lost mirror is rebuilt from the local archive: that path writes the mirror too.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{phone.state}/sources/chat.db/mirror.db{suffix}").unlink(missing_ok=True)
    assert sync(phone.source, [str(phone.target)], state_dir=phone.state, pm=phone.pm).ok
    assert (phone.state / "sources" / "chat.db" / "mirror.db").exists()
    app.close()
    assert mid_pass == {}, "loose while a pass ran"
    # The targets' folders are the user's; what syncd made in them is private too.
    assert loose_modes(phone.state, *phone.target.iterdir(), *(tmp_path / "sealed").iterdir()) == {}


def test_a_daemon_under_umask_022_keeps_its_state_private(tmp_path, umask_022):
    rig = Rig(tmp_path, targets=1)
    rig.execute("PRAGMA journal_mode=wal")
    rig.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, text TEXT)")
    rig.execute("INSERT INTO message VALUES (1, 'hello')")
    try:
        rig.start()
        rig.wait_heads(1)
        rig.execute("INSERT INTO message VALUES (2, 'the latest, in the -wal')")
        rig.wait_heads(2)
        mirror_wal = rig.state / "sources" / "chat.db" / "mirror.db-wal"
        assert mirror_wal.exists()  # the daemon holds the mirror open: its -wal is the newest rows
        assert loose_modes(rig.state, *rig.targets[0].iterdir()) == {}
    finally:
        rig.kill()


def test_an_older_state_dir_is_made_private_with_one_warning(phone, tmp_path):
    assert phone.sync().ok
    source = phone.state / "sources" / "chat.db"
    # What an older syncd left under umask 022.
    for path in (phone.state / "sources", source, source / "staging", source / "targets"):
        path.chmod(0o755)
    for path in (source / "mirror.db", source / "staging" / "replica.db"):
        path.chmod(0o644)
    add_message(phone, 2)
    done = _cli("sync", str(phone.source), "--to", str(phone.target), "--state", str(phone.state))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "readable by other local users" in line]
    assert len(warnings) == 1 and str(source) in warnings[0], done.stderr
    assert loose_modes(phone.state / "sources") == {}
    again = _cli("sync", str(phone.source), "--to", str(phone.target), "--state", str(phone.state))
    assert "readable by other" not in again.stderr  # said once, when it was true


# A pass killed mid-write: a scratch folder as sync.py makes them, and a cursor and a target
# object half-written by atomic_write (their data, stdin, never ends).
CRASHING_WRITER = """
import sys, tempfile, threading
from pathlib import Path
from syncd.fsutil import atomic_write
from syncd.archive.state import SourceState
from syncd_folder import FolderBackend

state, target = SourceState(sys.argv[1], "chat.db"), FolderBackend(Path(sys.argv[2]))
with state.locked():
    Path(tempfile.mkdtemp(dir=state.root), "delta").write_bytes(b"rows in the clear")
    threading.Thread(target=atomic_write, args=(state.cursors / "0123456789abcdef.json", sys.stdin.buffer),
                     daemon=True).start()
    target.write("chat.db/objects/0000000009-delta-x.zst", open("/dev/stdin", "rb"))
"""


def test_crash_leftovers_are_swept_by_the_next_pass(phone, tmp_path):
    assert phone.sync().ok
    state_root = phone.state / "sources" / "chat.db"
    objects = phone.target / "chat.db" / "objects"
    writer = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(phone.state), str(phone.target)],
                              stdin=subprocess.PIPE)


    def leftovers():
        found = [*state_root.glob("tmp*"), *state_root.glob("targets/.*.tmp"), *objects.glob(".*.tmp")]
        return found if len(found) == 3 else None

    try:
        wait_for(leftovers, what="the writer to be mid-write")
    finally:
        writer.kill()  # kill -9: none of its own cleanup runs
        writer.wait()
    assert leftovers()
    (target_temp,) = objects.glob(".*.tmp")
    add_message(phone, 2)
    assert phone.sync().ok
    # The state dir's leftovers go at once: under the source's lock, nobody else writes there.
    assert not list(state_root.glob("tmp*")) and not list(state_root.glob("targets/.*.tmp"))
    # A target's young temp file stays: another machine may be writing it.
    assert target_temp.exists()
    old = time.time() - 16 * 60
    os.utime(target_temp, (old, old))
    add_message(phone, 3)
    assert phone.sync().ok
    assert not target_temp.exists()
    phone.check_all_versions()
