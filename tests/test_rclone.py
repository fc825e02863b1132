"""The rclone plugin against real `rclone serve s3` and `rclone serve sftp` on 127.0.0.1."""

from __future__ import annotations

import io
import shlex

import pytest
from servers import PASSWORD, S3_KEY, S3_SECRET, USER, fresh_path, rclone
from test_local_first import add_message, phone  # noqa: F401 - `phone` is a fixture: a one-table chat db

from syncd.errors import NotFound, PermanentError, TransientError
from syncd.plugins import open_backend
from syncd.testing import BackendContract
from syncd_rclone import RcloneBackend, redact, rclone_binary


class TestRcloneS3(BackendContract):
    LARGE_SIZE = 6 << 20

    @pytest.fixture
    def backend(self, rclone_remotes):
        return RcloneBackend.from_url(f"rclone:s3test:bucket/{fresh_path()}")

    @pytest.fixture
    def unreachable_backend(self, closed_port):
        return RcloneBackend.from_url(
            f"rclone::s3,provider=Rclone,endpoint='http://127.0.0.1:{closed_port}',access_key_id={S3_KEY},"
            f"secret_access_key={S3_SECRET}:bucket/x")


class TestRcloneSFTP(BackendContract):
    LARGE_SIZE = 6 << 20
    # rclone's SFTP client replaces by remove-then-rename unless the server offers posix-rename;
    # a CI run caught `rclone serve sftp` with no file at the name mid-replace.
    REPLACE_MAY_GAP = True

    @pytest.fixture
    def backend(self, rclone_remotes):
        return RcloneBackend.from_url(f"rclone:sftptest:{fresh_path()}")


def test_binary_comes_from_the_venv():
    import sys
    from pathlib import Path

    assert Path(rclone_binary()).parent == Path(sys.executable).parent


def test_on_the_fly_remote_hides_its_secrets(rclone_remotes):
    s3 = rclone_remotes["s3"]
    url = (f"rclone::s3,provider=Rclone,endpoint='http://127.0.0.1:{s3.port}',access_key_id={S3_KEY},"
           f"secret_access_key={S3_SECRET}:bucket/{fresh_path()}")
    backend = RcloneBackend.from_url(url)
    assert S3_SECRET not in backend.location and S3_KEY not in backend.location
    assert "secret_access_key=***" in backend.location and f"127.0.0.1:{s3.port}" in backend.location
    backend.write("src/manifest.json", io.BytesIO(b"{}"))  # and it works
    assert [i.name for i in backend.list("")] == ["src/manifest.json"]


def test_wrong_s3_secret_is_one_permanent_error_without_the_secret(rclone_remotes):
    s3 = rclone_remotes["s3"]
    wrong = "wrong-Secret-9f3c"
    backend = RcloneBackend.from_url(f"rclone::s3,provider=Rclone,endpoint='http://127.0.0.1:{s3.port}',"
                                     f"access_key_id={S3_KEY},secret_access_key={wrong}:bucket/x")
    with pytest.raises(PermanentError, match="authentication failed") as caught:
        backend.write("src/manifest.json", io.BytesIO(b"{}"))
    assert wrong not in str(caught.value) + repr(caught.value) + str(caught.value.hint)


def test_unreachable_sftp_is_transient(closed_port):
    obscured = rclone("obscure", PASSWORD)
    backend = RcloneBackend.from_url(f"rclone::sftp,host=127.0.0.1,port={closed_port},user={USER},pass={obscured}:x")
    with pytest.raises(TransientError, match="rclone::sftp") as caught:
        backend.list("")
    assert obscured not in str(caught.value) and "pass=***" in str(caught.value)


# What rclone printed (exit code 1) when a read of `rclone serve sftp` fell into a replace's
# remove-then-rename gap: the file vanished after rclone saw it, or reappeared after it didn't.
RACES = [
    ("ERROR : Attempt 1/1 failed with 1 errors and: file does not exist", NotFound, "manifest.json"),
    ('ERROR : Attempt 1/1 failed with 1 errors and: error listing "": sftp: '
     '" /t/src/manifest.json: not a directory" (SSH_FX_FAILURE)', TransientError, "changed while it was read"),
]


@pytest.mark.parametrize("stderr, error, message", RACES)
def test_a_read_racing_a_replace_can_be_tried_again(tmp_path, stderr, error, message):
    fake = tmp_path / "rclone"
    fake.write_text(f"#!/bin/sh\necho {shlex.quote(stderr)} >&2\nexit 1\n")
    fake.chmod(0o755)
    backend = RcloneBackend("sftptest", "t")
    backend.binary = str(fake)
    with pytest.raises(error, match=message):
        backend.open("src/manifest.json")


def test_unknown_remote_is_permanent(rclone_remotes):
    with pytest.raises(PermanentError, match="nosuchremote") as caught:
        RcloneBackend.from_url("rclone:nosuchremote:x").list("")
    assert "rclone config" in caught.value.hint


def test_url_through_the_plugin_manager(pm, rclone_remotes):
    backend = open_backend(pm, "rclone:sftptest:some/where")
    assert isinstance(backend, RcloneBackend) and backend.location == "rclone:sftptest:some/where"
    with pytest.raises(NotFound):
        backend.open("nothing")


@pytest.mark.parametrize("remote, shown", [
    (":s3,provider=Minio,secret_access_key=abc,endpoint='http://h:9000'", ":s3,provider=Minio,secret_access_key=***,endpoint='http://h:9000'"),
    (":webdav,url=http://h,user=u,pass=\"p,w\"", ":webdav,url=http://h,user=u,pass=***"),
    ("gdrive", "gdrive"),
])
def test_redact(remote, shown):
    assert redact(remote)[0] == shown
    assert PASSWORD not in redact(remote)[0]


def test_url_without_a_remote_is_refused():
    with pytest.raises(PermanentError, match="names no remote"):
        RcloneBackend.from_url("rclone:just-a-path")


@pytest.mark.parametrize("remote", ["s3test:bucket", "sftptest:"])
def test_every_version_restores_from_an_rclone_remote(phone, rclone_remotes, remote):
    url = f"rclone:{remote}{'/' if remote.endswith('bucket') else ''}{fresh_path()}"
    for n in (2, 3):
        assert phone.sync([url]).ok
        add_message(phone, n)
    assert phone.sync([url]).targets[0].version == 3
    phone.check_all_versions(url)
