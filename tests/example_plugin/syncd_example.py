"""A worked example of a syncd storage plugin: `example:///path` keeps objects as files below a folder.

docs/plugins.md walks through it: parse the URL in `from_url`, publish atomically, list
sorted without temporary files, map every library error to a syncd error in one function.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from syncd.backend import ObjectInfo, bounded
from syncd.errors import NotFound, PermanentError, TransientError
from syncd.plugins import hookimpl

CHUNK = 1 << 20
TRANSIENT = {errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.EIO}


def classify(error: OSError, location: str) -> Exception:
    """The one place where library errors become syncd errors."""
    message = f"{location}: {error.strerror or error}"
    if isinstance(error, FileNotFoundError):
        return NotFound(message)
    if error.errno in TRANSIENT:
        return TransientError(message, hint="is the disk there?")
    return PermanentError(message)


class ExampleBackend:
    schemes = ("example",)

    def __init__(self, root: Path):
        self.root = root
        self.location = f"example://{root}"

    @classmethod
    def from_url(cls, url: str) -> ExampleBackend:
        return cls(Path(unquote(urlsplit(url).path)))

    def list(self, prefix: str) -> list[ObjectInfo]:
        found = []
        try:
            for folder, _, files in os.walk(self.root, onerror=_raise):
                for file in files:
                    name = Path(folder, file).relative_to(self.root).as_posix()
                    if name.startswith(prefix) and not file.startswith("."):  # dot-files: writes in progress
                        found.append(ObjectInfo(name, Path(folder, file).stat().st_size))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise classify(e, self.location) from None
        return sorted(found, key=lambda info: info.name)

    def open(self, name: str, limit: int | None = None) -> BinaryIO:
        try:
            return bounded(open(self.root / name, "rb"), limit, f"{self.location}: {name}")  # read up to `limit`
        except OSError as e:
            raise classify(e, self.location) from None

    def write(self, name: str, data: BinaryIO) -> None:
        path = self.root / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".", dir=path.parent)  # invisible to list()
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := data.read(CHUNK):  # stream: never read everything at once
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)  # atomic: the old object or the whole new one
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise classify(e, self.location) from None

    def delete(self, name: str) -> None:
        try:
            (self.root / name).unlink(missing_ok=True)
        except OSError as e:
            raise classify(e, self.location) from None

    def close(self) -> None:
        pass


def _raise(error: OSError) -> None:
    raise error


@hookimpl
def register_backends():
    return [ExampleBackend]
