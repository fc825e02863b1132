"""One media file is served by reading only its byte range of the pack that holds it (plain stores),
every byte checked against the file's hash; a sealed pack is read whole (age has no ranged read)."""

from __future__ import annotations

import io
import random

import pytest
from pyrage import x25519

from syncd.archive import crypto
from syncd.delivery.media import copy_store
from syncd.errors import CorruptObject
from syncd.media.area import PlainArea, SealedArea
from syncd.media.backup import back_up
from syncd.media.listing import read_listing
from syncd.media.restore import write_media_file
from syncd.media.store import OBJECTS, PACK_SIZE
from syncd.plugins import open_backend, plugin_manager
from test_media_store import make_tree


class Counting:
    """A backend whose object streams count the bytes read through them; `seekable` as asked."""

    def __init__(self, inner, seekable: bool):
        self.inner, self.seekable, self.read = inner, seekable, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def open(self, name, limit=None):
        stream, outer = self.inner.open(name, limit), self

        class Stream:
            def read(self, n=-1):
                data = stream.read(n)
                outer.read += len(data)
                return data

            def seekable(self):
                return outer.seekable

            def seek(self, offset, whence=0):
                return stream.seek(offset, whence)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                stream.close()

        return Stream()


@pytest.fixture
def packed(tmp_path):
    (tmp_path / "store").mkdir()
    store = open_backend(plugin_manager(), str(tmp_path / "store"))
    rnd = random.Random(4)
    files = {f"Stickers/s{i:03d}.webp": rnd.randbytes(rnd.randrange(20_000, 60_000)) for i in range(300)}
    make_tree(tmp_path / "media", files)
    done = back_up(store, tmp_path / "media", tmp_path / "state")
    [pack] = store.list(OBJECTS)
    assert pack.size > 5 << 20 and pack.size <= PACK_SIZE
    return store, files, {f.path: f for f in read_listing(store, done.listing)}


@pytest.mark.parametrize("seekable", [True, False], ids=["seek", "skip"])
def test_one_packed_file_reads_its_range_only(packed, seekable):
    store, files, listed = packed
    counting = Counting(store, seekable)
    for path in ("Stickers/s000.webp", "Stickers/s150.webp", "Stickers/s299.webp"):
        counting.read = 0
        out = io.BytesIO()
        write_media_file(PlainArea(counting), listed[path], out)
        assert out.getvalue() == files[path]
        if seekable:  # the range and nothing else (the index objects are read apart from the pack)
            assert counting.read - sum(o.size for o in store.list("media/index/")) == len(files[path])


def test_a_forged_byte_in_the_range_is_refused(packed, tmp_path):
    store, files, listed = packed
    [pack] = store.list(OBJECTS)
    path = tmp_path / "store" / pack.name
    data = bytearray(path.read_bytes())
    at = data.find(files["Stickers/s150.webp"])
    data[at + 10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObject, match="does not match its hash"):
        write_media_file(store, listed["Stickers/s150.webp"], io.BytesIO())


def test_a_sealed_store_serves_the_file_from_its_pack_read_whole(packed, tmp_path):
    store, files, listed = packed
    identity = x25519.Identity.generate()
    (tmp_path / "sealed").mkdir()
    sealed_backend = open_backend(plugin_manager(), str(tmp_path / "sealed"))
    area = SealedArea(sealed_backend, "f", b"k" * 32, seal=lambda data: crypto.seal_bytes(data, [identity.to_public()]),
                      unseal=lambda data, where: crypto.open_bytes(data, [identity], where))
    copy_store(PlainArea(store), area)
    out = io.BytesIO()
    write_media_file(area, listed["Stickers/s042.webp"], out)
    assert out.getvalue() == files["Stickers/s042.webp"]
