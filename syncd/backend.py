"""The storage seam: what syncd needs from a place that keeps objects.

The remote format is immutable objects with sortable names plus one small
manifest, so a backend never appends, locks or edits; everything clever (diffs,
compaction, encryption, retries) lives in the core. Backends come from plugins
(see `syncd.plugins`); one module per backend, its URL parsing beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
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
    - `delete(name)` MUST succeed when the object is already gone.
    - Optionally, `create(name, data)` writes like `write` but only if `name` is
      free, atomically against a concurrent `create`, and raises
      `syncd.errors.AlreadyExists` otherwise. Without it, syncd claims a source
      by check, write and read back (see syncd.claims), which a race can beat.
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

    def open(self, name: str) -> BinaryIO: ...

    def write(self, name: str, data: BinaryIO) -> None: ...

    def delete(self, name: str) -> None: ...

    def close(self) -> None: ...
