"""The conformance suite on the backends that need no server: folder and memory."""

from __future__ import annotations

import pytest

from syncd.backend import ObjectInfo
from syncd.testing import BackendContract, MemoryBackend
from syncd_folder import FolderBackend


class TestFolderBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path):
        return FolderBackend(tmp_path)

    @pytest.fixture
    def unreachable_backend(self, tmp_path):
        return FolderBackend(tmp_path / "not-mounted")


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self, memory_backend):
        return memory_backend


class InPlace(MemoryBackend):
    """Breaks the contract: writes straight under the final name, chunk by chunk."""

    def write(self, name, data):
        self.objects[name] = b""
        while chunk := data.read(1 << 16):
            self.objects[name] += chunk


class Unsorted(MemoryBackend):
    """Breaks the contract: lists in insertion order."""

    def list(self, prefix):
        return [ObjectInfo(n, len(d)) for n, d in self.objects.items() if n.startswith(prefix)]


class Greedy(MemoryBackend):
    """Breaks the contract: reads the whole stream into memory."""

    def write(self, name, data):
        self.objects[name] = data.read()


@pytest.mark.parametrize("broken, check", [
    (InPlace, "test_write_is_never_seen_partially"),
    (InPlace, "test_overwrite_shows_the_old_or_the_new_manifest"),
    (Unsorted, "test_listing_is_sorted_and_complete"),
    (Greedy, "test_large_object_is_streamed"),
])
def test_the_suite_catches_broken_backends(broken, check):
    name = f"broken-{broken.__name__}-{check}"
    try:
        with pytest.raises(AssertionError):
            getattr(BackendContract(), check)(broken(name))
    finally:
        MemoryBackend.forget(name)
