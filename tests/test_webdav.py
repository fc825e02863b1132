"""The WebDAV plugin against two real servers on 127.0.0.1: WsgiDAV and `rclone serve webdav`."""

from __future__ import annotations

import io
import traceback

import pytest
from servers import PASSWORD, USER, fresh_path

from syncd.errors import NotFound, PermanentError, SyncdError, TransientError
from syncd.testing import BackendContract
from syncd_webdav import WebDAVBackend


class TestWsgiDAV(BackendContract):
    REPLACE_MAY_GAP = True  # MOVE with Overwrite: T deletes the old object first

    @pytest.fixture
    def backend(self, wsgidav):
        backend = WebDAVBackend.from_url(wsgidav.url(fresh_path()))
        yield backend
        backend.close()

    @pytest.fixture
    def unreachable_backend(self, closed_port):
        return WebDAVBackend.from_url(f"webdav://{USER}@127.0.0.1:{closed_port}/x")


class TestRcloneServeWebDAV(BackendContract):
    REPLACE_MAY_GAP = True
    REPLACE_MAY_TEAR = True  # seen in about 1 run in 10 of the overwrite test

    @pytest.fixture
    def backend(self, rclone_webdav):
        backend = WebDAVBackend.from_url(f"webdav://{USER}@127.0.0.1:{rclone_webdav.port}/{fresh_path()}")
        yield backend
        backend.close()


def test_password_in_the_url_is_refused():
    with pytest.raises(PermanentError, match="must not hold a password") as caught:
        WebDAVBackend.from_url(f"webdav://{USER}:{PASSWORD}@nas.local/dav")
    assert PASSWORD not in str(caught.value) + str(caught.value.hint)


def test_location_names_user_and_host_but_no_password(wsgidav):
    backend = WebDAVBackend.from_url(wsgidav.url("a b/c", scheme="webdavs"))
    assert backend.location == f"webdavs://{USER}@127.0.0.1:{wsgidav.port}/a%20b/c"
    assert backend.base.startswith("https://127.0.0.1")
    assert PASSWORD not in repr(backend) + backend.location


def everything_said(error: BaseException) -> str:
    """All a user or a log could see of an error: message, hint, repr, and the whole traceback."""
    return " ".join([str(error), repr(error), str(getattr(error, "hint", "")),
                     "".join(traceback.format_exception(error))])


def provoke(backend) -> SyncdError:
    with pytest.raises(SyncdError) as caught:
        backend.write("src/objects/x", io.BytesIO(b"data"))
    return caught.value


def test_errors_never_show_the_password(wsgidav, closed_port, tmp_path, monkeypatch):
    url = wsgidav.url(fresh_path())
    seen = []
    wsgidav.fault("500", methods="PUT")
    try:
        seen.append(provoke(WebDAVBackend.from_url(url)))
    finally:
        wsgidav.fault(None)
    seen.append(provoke(WebDAVBackend.from_url(f"webdav://{USER}@127.0.0.1:{closed_port}/x")))
    wrong = "wrong-Pw-0d6b2a"
    (tmp_path / "netrc").write_text(f"machine 127.0.0.1 login {USER} password {wrong}\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    seen.append(provoke(WebDAVBackend.from_url(url)))
    assert [type(e) for e in seen] == [TransientError, TransientError, PermanentError]
    assert "authentication failed" in str(seen[2])
    for error in seen:
        said = everything_said(error)
        assert PASSWORD not in said and wrong not in said, said


def test_netrc_entry_for_another_login_is_not_used(wsgidav, tmp_path, monkeypatch):
    backend = WebDAVBackend.from_url(wsgidav.url(fresh_path(), user="someone-else"))
    with pytest.raises(PermanentError, match="authentication failed"):
        backend.list("")


def test_broken_netrc_is_reported_without_quoting_it(tmp_path, monkeypatch):
    (tmp_path / "netrc").write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD} bogus\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(PermanentError) as caught:
        WebDAVBackend.from_url("webdav://syncd@127.0.0.1/x")
    assert PASSWORD not in everything_said(caught.value)


def test_missing_object_on_a_missing_folder_is_not_found(wsgidav):
    backend = WebDAVBackend.from_url(wsgidav.url(fresh_path()))
    assert backend.list("src/") == []
    with pytest.raises(NotFound):
        backend.open("src/manifest.json")


def test_a_password_can_come_from_the_config_file_options(pm, tmp_path, monkeypatch):
    """`[[target]] options = { password = … }` stands in for ~/.netrc."""
    from syncd.plugins import open_backend

    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    backend = open_backend(pm, "webdav://alice@127.0.0.1:9/x", options={"password": "s3cret"})
    assert backend.client.auth is not None and "s3cret" not in repr(backend) + backend.location
    with pytest.raises(Exception, match="take no option 'colour'"):
        open_backend(pm, "webdav://alice@127.0.0.1:9/x", options={"colour": "blue"})
