"""The storage seam: what syncd needs from a place that keeps objects.

The remote format is immutable objects with sortable names plus one small
manifest, so a backend never appends, locks or edits; everything clever (diffs,
compaction, encryption, retries) lives in the core. Backends come from plugins
(see `syncd.plugins`); one module per backend, its URL parsing beside it.
"""

from __future__ import annotations

from typing import BinaryIO, ClassVar, NamedTuple, Protocol, runtime_checkable

from .errors import TooLarge

# Every network operation has an overall deadline, not only an idle timeout: a server that
# trickles a byte every 20 s never trips an idle timeout and would hold a pass (or a `log`)
# forever. An operation gets DEADLINE_BASE seconds, plus the time its bytes take at
# DEADLINE_MIN_RATE (a poor mobile uplink), so a slow but honest transfer still finishes.
DEADLINE_BASE = 120.0
DEADLINE_MIN_RATE = 16 << 10  # bytes per second


class ObjectInfo(NamedTuple):
    """One object a backend lists: its name and size in bytes."""

    name: str
    size: int


@runtime_checkable
class Backend(Protocol):
    """A store of named objects. Names are `/`-separated relative paths.

    Contract (the conformance suite checks it):
    - `write(name, data)` MUST be atomic: readers see the old object, or the
      whole new one, never a partial object under `name`. It MUST be durable
      when it returns, and MAY replace an existing object (only manifests are
      rewritten; objects are written once). Where the store has no atomic
      replace (WebDAV's MOVE deletes the target first), a reader MAY find
      nothing for a moment during a replace, but never a partial object.
    - `list(prefix)` MUST return every object whose name starts with `prefix`,
      sorted by name, and MUST NOT return objects being written.
    - `open(name)` MUST raise `syncd.errors.NotFound` for a missing object.
    - `open(name, limit)`, the way syncd reads everything from a target, MUST NOT
      fetch, hold or spool more than `limit` bytes of the object (plus one read
      chunk), and MUST raise `syncd.errors.TooLarge`, from `open` or at the latest
      from the read that would pass `limit`, when the object is longer. A store
      that streams lazily can return `bounded(stream, limit, what)`; one that
      downloads first MUST stop downloading at the limit.
    - Every operation that crosses a network MUST end within its deadline
      (`deadline_for`), counted over the whole operation, not per read.
    - `delete(name)` MUST succeed when the object is already gone.
    - Optionally, `create(name, data)` writes like `write` but only if `name` is
      free, atomically against a concurrent `create`, and raises
      `syncd.errors.AlreadyExists` otherwise. Without it, syncd claims a source
      by check, write and read back (see syncd.archive.claims), which a race can beat.
    - Optionally, `link(name, source, source_name)` stores `name` as the same file as object
      `source_name` of backend `source` (a hard link between two folders on one filesystem),
      durable like `write`, and returns False, writing nothing, where it can't; syncd asks it only
      for immutable, content-addressed media objects (see syncd.media.area.PlainArea.copy_from).
    - Optionally, `batch()` returns a writer whose `write(name, data)`s are durable and listed only
      once its `commit()` returns (`discard()` drops them): the media store's local objects go
      through it (see syncd.media.area.PlainArea.batch and docs/plugins.md).
    - Every failure MUST be a `TransientError` (worth retrying) or a
      `PermanentError`, with a message that names the target but holds no secret.
    - `from_url(url, **options)` MUST only parse: no network, no access to the
      store (`syncd config check` calls it to check a target). It raises
      `PermanentError` for a URL or options it can't use.

    A class MAY also set `syntax`, the URL forms it takes as a user writes them
    (`("rclone:REMOTE:path",)`); hints list them. Without it, `scheme://…` is shown.
    """

    schemes: ClassVar[tuple[str, ...]]
    location: str  # how messages name this target: the URL without credentials

    @classmethod
    def from_url(cls, url: str) -> Backend: ...

    def list(self, prefix: str) -> list[ObjectInfo]: ...

    def open(self, name: str, limit: int | None = None) -> BinaryIO: ...

    def write(self, name: str, data: BinaryIO) -> None: ...

    def delete(self, name: str) -> None: ...

    def close(self) -> None: ...


def deadline_for(size: int) -> float:
    """Seconds an operation that moves `size` bytes may take in all."""
    return DEADLINE_BASE + size / DEADLINE_MIN_RATE


class LimitedStream:
    """A read-only view of `inner` that raises TooLarge once more than `limit` bytes came through.

    It never asks `inner` for more than `limit + 1` bytes, however much a caller asks for.
    """

    def __init__(self, inner: BinaryIO, limit: int, what: str):
        self.inner, self.limit, self.what, self.seen = inner, limit, what, 0

    def read(self, n: int = -1) -> bytes:
        room = self.limit + 1 - self.seen
        data = self.inner.read(room if n is None or n < 0 else min(n, room))
        self.seen += len(data)
        if self.seen > self.limit:
            raise too_large(self.what, self.limit)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(getattr(self.inner, "seekable", lambda: False)())

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to `offset` from the start (a ranged read of a seekable stream); never past `limit`."""
        if whence != 0 or not 0 <= offset <= self.limit:
            raise ValueError("a LimitedStream seeks from its start, within its limit")
        self.seen = self.inner.seek(offset)
        return self.seen

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> LimitedStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bounded(stream: BinaryIO, limit: int | None, what: str) -> BinaryIO:
    """`stream` as `open(name, limit)` must return it: read through a LimitedStream if there is a limit."""
    return stream if limit is None else LimitedStream(stream, limit, what)


def too_large(what: str, limit: int) -> TooLarge:
    return TooLarge(f"{what} is larger than the {limit} bytes it may be",
                    hint="the target holds something syncd did not write there; run `syncd verify` on it")
