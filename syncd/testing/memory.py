"""`memory://NAME`: objects in a dict, for tests; every backend with the same NAME shares it.

It keeps the whole contract, so the core can be tested without disks or
servers. The stores live as long as the process does.
"""

from __future__ import annotations

import io
import threading
from typing import BinaryIO, ClassVar
from urllib.parse import urlsplit

from syncd.backend import ObjectInfo, too_large
from syncd.errors import NotFound, PermanentError
from syncd.plugins import hookimpl

READ_CHUNK = 1 << 20


class MemoryBackend:
    """Objects as bytes in a shared, locked dict; a write becomes visible only when complete."""

    schemes = ("memory",)
    syntax = ("memory://NAME",)
    _stores: ClassVar[dict[str, dict[str, bytes]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "default"):
        self.location = f"memory://{name}"
        with self._lock:
            self.objects = self._stores.setdefault(name, {})

    @classmethod
    def from_url(cls, url: str) -> MemoryBackend:
        parts = urlsplit(url)
        if parts.scheme != "memory" or not parts.netloc:
            raise PermanentError(f"{url!r} is not a memory://NAME URL")
        return cls(parts.netloc + parts.path.rstrip("/"))

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop a store, as if its server was wiped."""
        with cls._lock:
            cls._stores.pop(name, None)

    def list(self, prefix: str) -> list[ObjectInfo]:
        with self._lock:
            found = [ObjectInfo(name, len(data)) for name, data in self.objects.items() if name.startswith(prefix)]
        return sorted(found, key=lambda info: info.name)

    def open(self, name: str, limit: int | None = None) -> BinaryIO:
        with self._lock:
            if name not in self.objects:
                raise NotFound(f"{name} is missing from {self.location}")
            data = self.objects[name]
        if limit is not None and len(data) > limit:
            raise too_large(f"{self.location}: {name}", limit)
        return io.BytesIO(data)

    def write(self, name: str, data: BinaryIO) -> None:
        # Read in chunks: the contract forbids asking a stream for everything at once.
        chunks = []
        while chunk := data.read(READ_CHUNK):
            chunks.append(chunk)
        with self._lock:
            self.objects[name] = b"".join(chunks)

    def delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(name, None)

    def close(self) -> None:
        pass


@hookimpl
def register_backends():
    return [MemoryBackend]
