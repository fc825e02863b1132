"""A version's media links read the store's index once, however many files a browser then serves."""

from __future__ import annotations

import io

from test_media_store import make_tree, stickers, target  # noqa: F401 (target is a fixture)

from syncd.media import links as links_module
from syncd.media import restore as restore_module
from syncd.media.backup import back_up
from syncd.media.links import MediaLinks
from syncd.media.restore import write_media_file


def test_files_served_one_after_another_read_the_index_once(tmp_path, target, monkeypatch):  # noqa: F811
    files = stickers(5, 30)
    make_tree(tmp_path / "media", files)
    listing = back_up(target, tmp_path / "media", tmp_path / "state").listing
    loads = []
    real = links_module.load_index
    monkeypatch.setattr(links_module, "load_index", lambda area: loads.append(1) or real(area))
    monkeypatch.setattr(restore_module, "load_index", lambda area: loads.append(1) or real(area))
    links = MediaLinks(target, listing)
    for path, data in files.items():
        out = io.BytesIO()
        write_media_file(links.area, links.files[path], out, links.index)
        assert out.getvalue() == data
    assert len(loads) == 1
