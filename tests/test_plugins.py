"""Storage plugins come through the `syncd` entry-point group, built-in ones included."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import pytest

from syncd.backend import Backend
from syncd.errors import PermanentError
from syncd.plugins import Hooks, backend_classes, open_backend, scheme_of
from syncd_folder import FolderBackend


def test_folder_plugin_is_registered_as_an_entry_point(pm):
    names = {ep.name: ep.value for ep in entry_points(group="syncd")}
    assert names.get("folder") == "syncd_folder"
    assert backend_classes(pm)["file"] is FolderBackend


def test_every_hook_is_documented():
    hooks = [f for name, f in inspect.getmembers(Hooks, inspect.isfunction) if not name.startswith("_")]
    assert hooks
    assert all(inspect.getdoc(f) for f in hooks)


def test_backends_satisfy_the_protocol(pm, tmp_path):
    urls = {"file": tmp_path.as_uri(), "memory": "memory://protocol", "webdav": "webdav://me@127.0.0.1/dav",
            "webdavs": "webdavs://me@127.0.0.1:8443/dav", "rclone": f"rclone::local:{tmp_path}"}
    classes = backend_classes(pm)
    assert set(urls) <= set(classes), "a built-in plugin is missing"
    for scheme, url in urls.items():
        assert isinstance(classes[scheme].from_url(url), Backend)


@pytest.mark.parametrize("url, scheme", [("/mnt/nas", "file"), ("./backup", "file"), ("backup", "file"),
                                         ("file:///mnt/nas", "file"), ("webdav://nas/x", "webdav"),
                                         ("rclone:gdrive:chat", "rclone")])
def test_scheme_of(url, scheme):
    assert scheme_of(url) == scheme


def test_unknown_scheme_names_it(pm):
    with pytest.raises(PermanentError, match="'ftp'"):
        open_backend(pm, "ftp://example/x")


def test_file_url_with_a_host_is_refused(pm):
    with pytest.raises(PermanentError, match="host"):
        open_backend(pm, "file://nas.local/share")
