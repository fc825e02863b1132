"""Secrets stay out of argv, output, logs and state files; the state dir is private whatever the umask.

Real parts throughout: `rclone serve webdav` and WsgiDAV with passwords, real rclone children
(whose command line is read from /proc), the real CLI and a real daemon process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_rig import Rig, wait_for
from servers import PASSWORD, USER, rclone
from test_local_first import add_message, phone  # noqa: F401 - `phone` is a fixture: a one-table chat db

import syncd_rclone
from syncd.redact import read_remote, redact_url
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
    assert "SECRET" not in redact_url(url) and "RET" not in redact_url(url).replace("RETURN", "")


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
