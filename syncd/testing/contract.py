"""`BackendContract`: the Backend protocol's MUST words as tests, for every backend.

Subclass it and provide a `backend` fixture returning an empty backend (a fresh
folder on the test server); optionally an `unreachable_backend` fixture (the same
kind of backend pointed at a closed port) to check error classification. Tune
`LARGE_SIZE` or `SLOW_CHUNKS` as class attributes if a backend is slow.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time

import pytest

from syncd.backend import Backend
from syncd.errors import NotFound, PermanentError, TargetError, TooLarge, TransientError

MANIFEST = "src/manifest.json"


class ChunkedStream(io.RawIOBase):
    """A stream of `size` pseudo-random bytes, given out in chunks, optionally slowly or with a failure.

    It records the largest read asked of it: a backend that streams never asks for everything.
    """

    def __init__(self, size: int, *, delay: float = 0.0, fail_after: int | None = None, seed: bytes = b"x"):
        self.size, self.delay, self.fail_after = size, delay, fail_after
        self.block = hashlib.sha256(seed).digest() * 2048  # 64 KiB that differ per seed
        self.pos = 0
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        want = len(buffer)
        self.largest_read = max(self.largest_read, want)
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise OSError("the stream broke off (a test's injected failure)")
        if self.delay:
            time.sleep(self.delay)
        n = min(want, self.size - self.pos, len(self.block))
        if self.fail_after is not None:
            n = min(n, max(self.fail_after - self.pos, 1))
        offset = self.pos % len(self.block)
        chunk = (self.block[offset:] + self.block)[:n]
        buffer[:n] = chunk
        self.pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            self.largest_read = max(self.largest_read, self.size)
            return super().read(self.size)
        return super().read(size)

    def expected(self) -> bytes:
        whole = self.block * (self.size // len(self.block) + 1)
        return whole[: self.size]


def read_all(backend: Backend, name: str) -> bytes:
    with backend.open(name) as f:
        return f.read()


def names(backend: Backend, prefix: str = "") -> list[str]:
    return [info.name for info in backend.list(prefix)]


class BackendContract:
    """Conformance tests every storage backend must pass."""

    LARGE_SIZE = 8 << 20  # larger than any buffer a backend should hold
    SLOW_CHUNKS = 12  # chunks in the slow write a concurrent reader watches
    STREAM_LIMIT = 16 << 20  # the largest single read a streaming write may ask for
    # True for stores whose replace deletes first (WebDAV MOVE with Overwrite: T,
    # RFC 4918 §9.9.3): a reader may then find nothing for a moment, never a partial object.
    REPLACE_MAY_GAP = False
    # True for servers that may hand a reader racing a replace the new object's bytes cut to
    # the old one's length (rclone serve webdav keeps the old size a moment). syncd reads a
    # manifest that doesn't parse again; any other tear is still a failure.
    REPLACE_MAY_TEAR = False

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a BackendContract subclass provides a `backend` fixture: an empty backend")

    @pytest.fixture
    def unreachable_backend(self) -> Backend:
        pytest.skip("this backend's test gives no unreachable_backend fixture")

    # -- reading and writing ------------------------------------------------

    def test_write_then_read_back(self, backend):
        backend.write("a/b/c/object.zst", io.BytesIO(b"\x00payload\xff"))
        assert read_all(backend, "a/b/c/object.zst") == b"\x00payload\xff"
        assert [(i.name, i.size) for i in backend.list("")] == [("a/b/c/object.zst", 9)]

    def test_empty_object(self, backend):
        backend.write("empty", io.BytesIO(b""))
        assert read_all(backend, "empty") == b""
        assert [(i.name, i.size) for i in backend.list("empty")] == [("empty", 0)]

    def test_missing_object_is_not_found(self, backend):
        with pytest.raises(NotFound):
            backend.open("src/objects/0000000001-base-x.zst")
        backend.write("src/other", io.BytesIO(b"1"))
        with pytest.raises(NotFound):
            backend.open("src/missing")

    def test_manifest_is_overwritten(self, backend):
        backend.write(MANIFEST, io.BytesIO(b'{"head": 1}'))
        backend.write(MANIFEST, io.BytesIO(b'{"head": 2, "longer": true}'))
        assert read_all(backend, MANIFEST) == b'{"head": 2, "longer": true}'
        assert names(backend) == [MANIFEST]

    def test_large_object_is_streamed(self, backend):
        stream = ChunkedStream(self.LARGE_SIZE, seed=b"large")
        backend.write("big/object", stream)
        assert stream.largest_read <= self.STREAM_LIMIT, "write read the whole stream into memory"
        digest, size = hashlib.sha256(), 0
        with backend.open("big/object") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        assert size == self.LARGE_SIZE
        assert digest.hexdigest() == hashlib.sha256(stream.expected()).hexdigest()
        assert [(i.name, i.size) for i in backend.list("big/")] == [("big/object", self.LARGE_SIZE)]

    def test_a_read_stops_at_its_limit(self, backend):
        data = ChunkedStream(3 << 16, seed=b"limit").expected()
        backend.write("src/objects/limited", io.BytesIO(data))
        with backend.open("src/objects/limited", limit=len(data)) as f:
            assert f.read() == data
        for limit in (len(data) - 1, 0):
            with pytest.raises(TooLarge):  # from open, or at the latest from the read that passes the limit
                with backend.open("src/objects/limited", limit=limit) as f:
                    while f.read(1 << 16):
                        pass
        with pytest.raises(NotFound):
            backend.open("src/objects/missing", limit=10)

    # -- listing ------------------------------------------------------------

    def test_listing_is_sorted_and_complete(self, backend):
        written = ["src/objects/0000000010-delta-b.zst", "src/objects/0000000002-base-a.zst", "src/manifest.json",
                   "other/manifest.json", "src/objects/0000000002-delta-c.zst", "Upper/x", "src/z/deep/er"]
        for n in written:
            backend.write(n, io.BytesIO(n.encode()))
        listed = backend.list("")
        assert [i.name for i in listed] == sorted(written)
        assert all(i.size == len(i.name.encode()) for i in listed)

    def test_listing_by_prefix(self, backend):
        for n in ["src/objects/1", "src/objects/2", "src/objectsX", "src/manifest.json", "src2/objects/1"]:
            backend.write(n, io.BytesIO(b"."))
        assert names(backend, "src/objects/") == ["src/objects/1", "src/objects/2"]
        assert names(backend, "src/objects") == ["src/objects/1", "src/objects/2", "src/objectsX"]
        assert names(backend, "src/") == ["src/manifest.json", "src/objects/1", "src/objects/2", "src/objectsX"]
        assert names(backend, "src") == names(backend, "src/") + ["src2/objects/1"]
        assert names(backend, "nothing/here/") == []

    # -- deleting -----------------------------------------------------------

    def test_delete_is_idempotent(self, backend):
        backend.write("src/objects/1", io.BytesIO(b"1"))
        backend.write("src/objects/2", io.BytesIO(b"2"))
        backend.delete("src/objects/1")
        backend.delete("src/objects/1")
        backend.delete("never/written")
        assert names(backend) == ["src/objects/2"]
        with pytest.raises(NotFound):
            backend.open("src/objects/1")

    # -- atomicity ----------------------------------------------------------

    def _watch_while_writing(self, backend, name: str, stream, allowed: set[bytes | None]) -> list:
        """Write `stream` to `name` while another thread keeps listing and reading `name`."""
        seen, done, problems = [], threading.Event(), []

        def watch():
            while not done.is_set():
                try:
                    listed = names(backend, name.rsplit("/", 1)[0] + "/")
                    if any(n != name for n in listed):
                        problems.append(f"listing shows {listed}")
                    seen.append(read_all(backend, name) if name in listed else None)
                except NotFound:
                    seen.append(None)  # deleted or replaced between the listing and the read
                except TransientError:
                    pass  # a read racing a replace may fail (a checksum changed underneath); a retry reads again
                except TargetError as e:
                    problems.append(repr(e))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            backend.write(name, stream)
        finally:
            done.set()
            watcher.join()
        assert not problems, problems
        assert seen, "the watcher never looked"
        partial = [s for s in seen if s not in allowed]
        assert not partial, f"a reader saw {len(partial[0] or b'')} bytes: a partial object under the final name"
        return seen

    def test_write_is_never_seen_partially(self, backend):
        stream = ChunkedStream(self.SLOW_CHUNKS << 16, delay=0.05, seed=b"slow")
        self._watch_while_writing(backend, "src/objects/slow", stream, {None, stream.expected()})
        assert read_all(backend, "src/objects/slow") == stream.expected()

    def test_overwrite_shows_the_old_or_the_new_manifest(self, backend):
        old = ChunkedStream(3 << 16, seed=b"old")
        backend.write(MANIFEST, old)
        new = ChunkedStream(self.SLOW_CHUNKS << 16, delay=0.05, seed=b"new")
        allowed = {old.expected(), new.expected()} | ({None} if self.REPLACE_MAY_GAP else set())
        if self.REPLACE_MAY_TEAR:
            allowed.add(new.expected()[:len(old.expected())])
        self._watch_while_writing(backend, MANIFEST, new, allowed)
        assert read_all(backend, MANIFEST) == new.expected()

    def test_interrupted_write_leaves_nothing_visible(self, backend):
        backend.write("src/objects/keep", io.BytesIO(b"keep"))
        stream = ChunkedStream(4 << 20, fail_after=1 << 20, seed=b"cut")
        with pytest.raises(Exception):  # noqa: B017 - whatever the stream raised, or the backend's wrap of it
            backend.write("src/objects/cut", stream)
        assert names(backend) == ["src/objects/keep"]
        with pytest.raises(NotFound):
            backend.open("src/objects/cut")

    # -- errors -------------------------------------------------------------

    def test_failures_are_classified(self, unreachable_backend):
        calls = [lambda b: b.list(""), lambda b: b.open("x/y"), lambda b: b.write("x/y", io.BytesIO(b"1")),
                 lambda b: b.delete("x/y")]
        for call in calls:
            with pytest.raises((TransientError, PermanentError)) as caught:
                call(unreachable_backend)
            assert unreachable_backend.location in str(caught.value), f"{caught.value!s} doesn't name the target"

    def test_location_holds_no_password(self, backend):
        assert not re.search(r"//[^/@]*:[^/@]*@", backend.location), "the location shows a user:password"
