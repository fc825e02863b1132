"""A source's archive on one backend: its manifest and its objects.

Layout (the same on every target and in the local state dir):

    <source>/manifest.json                          the commit point, rewritten last
    <source>/objects/<version>-<kind>-<sha256>.zst  immutable, sorted by version

`kind` is `base` (the whole mirror, a SQLite file) or `delta` (a SQLite session
changeset). See docs/format.md.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, Sequence, TypeVar

from . import codec
from ..backend import Backend, too_large
from ..errors import ArchiveError, CorruptObject, NotFound, TooLarge, UsageError
from ..fsutil import private_opener
from .manifest import Manifest, ObjectRef

if TYPE_CHECKING:
    from pyrage import x25519

    from .sealed import SealedArchive
    from .state import SourceState

MANIFEST = "manifest.json"
OBJECTS = "objects/"
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHUNK = 1 << 20
# The largest manifest syncd writes or reads: a manifest is read whole, so a target must not
# hand us an endless one. 100,000 versions (a change a minute for ten weeks) take 62 MiB,
# 94 MiB if every version also had a base; an encrypted manifest is a little longer (age
# adds 16 bytes per 64 KiB and about 100 bytes per recipient), hence the slack for reading.
MANIFEST_MAX_BYTES = 128 << 20
MANIFEST_SEAL_SLACK = 1 << 20
# Stores without an atomic replace (WebDAV's MOVE deletes the old manifest first,
# RFC 4918 §9.9.3) leave a moment with no manifest while a writer replaces it;
# a reader waits that out (doubling waits, about 6 s in all: a busy server is slow)
# rather than call the archive empty.
MANIFEST_GAP_RETRIES = 5
MANIFEST_GAP_WAIT = 0.2
# Nor is every replace atomic for readers: rclone serve webdav's VFS can serve the new
# manifest's bytes cut to the old one's length. A reader reads again before calling a
# manifest damaged.
MANIFEST_TORN_RETRIES = 2


def check_source_name(name: str) -> str:
    if not SOURCE_NAME.match(name):
        raise UsageError(f"{name!r} can't name a source",
                         hint="use letters, digits, '.', '_' and '-' (e.g. --name wechat)")
    return name


def choose_source(names: list[str], source: str | None, location: str) -> str:
    """The named source, or the only one of `names` (what a target holds, or opens)."""
    if source is not None:
        if source not in names:
            raise ArchiveError(f"{location} holds no source named {source!r}",
                               hint=f"sources there: {', '.join(sorted(names)) or 'none'}")
        return source
    if len(names) > 1:
        raise UsageError(f"{location} holds several sources: {', '.join(sorted(names))}", hint="pick one with --source")
    return names[0]


def list_sources(backend: Backend) -> list[str]:
    """Names of the sources that have a manifest on `backend`."""
    suffix = "/" + MANIFEST
    return [info.name[: -len(suffix)] for info in backend.list("") if info.name.endswith(suffix)
            and "/" not in info.name[: -len(suffix)]]


class CheckedReader:
    """An object's bytes on their way out, hashed as they go: the last read fails if they aren't the ref's.

    So a damaged local object fails its upload before the target's write completes.
    Seekable, for retries and Content-Length; checked when read from the start.
    """

    def __init__(self, inner: BinaryIO, ref: ObjectRef, where: str):
        self.inner, self.ref, self.where = inner, ref, where
        self.seek(0)

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.digest.update(data)
        self.size += len(data)
        if self.from_start and ((not data and n != 0) or self.size > self.ref.size):
            if self.size != self.ref.size or self.digest.hexdigest() != self.ref.sha256:
                raise CorruptObject(f"{self.where} is damaged (its content doesn't match the local manifest)",
                                    hint="run `syncd verify` on the state dir's archive")
        return data

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.inner.seek(offset, whence)
        self.digest, self.size, self.from_start = hashlib.sha256(), 0, position == 0
        return position


AreaT = TypeVar("AreaT", covariant=True)  # what a caller builds for a layout (a syncd.media.area)


class MediaAreas(Protocol[AreaT]):
    """Builds where a source's media lies on a target, one builder per layout (syncd.delivery.media for
    writing, syncd.readback.restore for reading). The media store is a peer of the archive, so a
    layout can't build its media area itself: it calls the builder for its layout (Archive.media_area)."""

    def plain(self, archive: Archive) -> AreaT: ...

    def sealed(self, archive: SealedArchive) -> AreaT: ...


@dataclass
class Sent:
    """What one delivery uploaded to a target (see Archive.send)."""

    manifest: Manifest  # the manifest to write there: the local one, as this layout names its objects
    bytes: int = 0
    note: str | None = None  # what it repaired
    replaced: list[str] = field(default_factory=list)  # objects superseded by new copies: deleted after the commit


class Archive:
    """A plain archive: the folder is named after the source (see syncd.archive.sealed for encrypted ones)."""

    manifest_name = MANIFEST
    described = "archive"  # in messages: "… no longer holds the archive it had"
    recipients: Sequence[x25519.Recipient] = ()  # whom the objects are encrypted to: nobody here

    def __init__(self, backend: Backend, source: str):
        self.backend = backend
        self.source = check_source_name(source)
        self.folder = self.source

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def cursor_key(self) -> str:
        """What names this archive's delivery cursor in the local state."""
        return self.location

    def _key(self, name: str) -> str:
        return f"{self.folder}/{name}"

    # -- manifest -----------------------------------------------------------

    def manifest_bytes(self) -> bytes | None:
        """The manifest as stored, or None if there is none."""
        for attempt in range(MANIFEST_GAP_RETRIES + 1):
            try:
                return self._read_manifest()
            except NotFound:
                # Objects without a manifest: another machine may be replacing it right now.
                if attempt == MANIFEST_GAP_RETRIES or not self.object_names():
                    return None
                time.sleep(MANIFEST_GAP_WAIT * 2 ** attempt)
        return None

    def _read_manifest(self) -> bytes:
        limit = MANIFEST_MAX_BYTES + MANIFEST_SEAL_SLACK
        with self.backend.open(self._key(self.manifest_name), limit=limit) as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:  # a backend that ignored the limit still can't make us parse more
            raise too_large(f"{self.location}: {self._key(self.manifest_name)}", limit)
        return raw

    def manifest(self) -> Manifest | None:
        """The manifest, or None if this source has never been written here."""
        for attempt in itertools.count():
            raw = self.manifest_bytes()
            if raw is None:
                return None
            try:
                return self.parse_manifest(raw)
            except CorruptObject:
                if attempt == MANIFEST_TORN_RETRIES:
                    raise
                time.sleep(MANIFEST_GAP_WAIT * 2 ** attempt)

    def parse_manifest(self, raw: bytes) -> Manifest:
        manifest = Manifest.from_bytes(raw, f"{self.location}: {self._key(MANIFEST)}")
        if manifest.source != self.source:
            raise CorruptObject(f"{self.location}: {self._key(MANIFEST)} belongs to source {manifest.source!r}")
        return manifest

    def write_manifest(self, manifest: Manifest) -> int:
        raw = manifest.to_bytes()
        if len(raw) > MANIFEST_MAX_BYTES:
            raise ArchiveError(f"the manifest of {self.source!r} has grown to {len(raw) >> 20} MiB, more than "
                               f"syncd reads ({MANIFEST_MAX_BYTES >> 20} MiB)",
                               hint="archive this source under a new --name from now on")
        self.backend.write(self._key(MANIFEST), io.BytesIO(raw))
        return len(raw)

    # -- objects ------------------------------------------------------------

    def object_names(self) -> set[str]:
        return set(self.stored_objects())

    def stored_objects(self) -> dict[str, int]:
        """Every object stored here (`objects/…`) with its size."""
        return {info.name[len(self.folder) + 1:]: info.size for info in self.backend.list(self._key(OBJECTS))}

    def store(self, plain: Path, kind: str, version: int, scratch: Path) -> ObjectRef:
        """Encode a local file and write it as a new object."""
        stored = scratch / f"{kind}.stored"
        with open(plain, "rb") as src, open(stored, "wb", opener=private_opener) as dst:
            size, sha256 = codec.encode(src, dst, level=codec.LEVELS[kind])
        ref = ObjectRef(f"{OBJECTS}{version:010d}-{kind}-{sha256[:32]}{codec.SUFFIX[codec.ZSTD]}",
                        size, sha256, codec.ZSTD)
        try:
            self.put(ref, stored)
        finally:
            stored.unlink(missing_ok=True)
        return ref

    def put(self, ref: ObjectRef, stored: Path) -> None:
        with open(stored, "rb") as f:
            self.backend.write(self._key(ref.name), f)

    def copy_to(self, ref: ObjectRef, other: Archive) -> None:
        """Send one stored object, as is, to another archive of the same source; never a damaged one."""
        where = f"{self.location}: {self._key(ref.name)}"
        with self.backend.open(self._key(ref.name)) as f:
            other.backend.write(other._key(ref.name), CheckedReader(f, ref, where))

    def lacks(self, manifest_size: int | None, refs: list[ObjectRef]) -> list[str]:
        """Which of `refs` and a manifest of `manifest_size` bytes (if given) are missing here or have
        another size: one listing."""
        stored = {info.name[len(self.folder) + 1:]: info.size for info in self.backend.list(f"{self.folder}/")}
        wanted = [(ref.name, ref.size) for ref in refs]
        wanted += [(self.manifest_name, manifest_size)] if manifest_size is not None else []
        return [name for name, size in wanted if stored.get(name) != size]

    def fetch(self, ref: ObjectRef, plain: Path) -> None:
        """Download an object, check it against its ref, and decode it into `plain`."""
        where = f"{self.location}: {self._key(ref.name)}"
        import tempfile  # a pass with nothing new fetches nothing: it doesn't pay for the import

        with tempfile.TemporaryFile(dir=plain.parent) as stored:
            self.download(ref, stored, where)
            stored.seek(0)
            self._decode(ref, stored, plain, where)

    def download(self, ref: ObjectRef, stored: BinaryIO, where: str) -> None:
        """Copy an object's stored bytes into `stored`, checking its size and sha256.

        Never more than its recorded size: a target can't fill the disk with an endless object.
        """
        digest, size = hashlib.sha256(), 0
        try:
            with self.backend.open(self._key(ref.name), limit=ref.size) as f:
                while size <= ref.size and (chunk := f.read(CHUNK)):
                    digest.update(chunk)
                    size += len(chunk)
                    stored.write(chunk)
        except NotFound:
            raise CorruptObject(f"{where} is missing", hint="run `syncd verify` on this target") from None
        except TooLarge:
            size = ref.size + 1
        if size != ref.size or digest.hexdigest() != ref.sha256:
            why = "longer than the manifest records" if size > ref.size else "its content doesn't match the manifest"
            raise CorruptObject(f"{where} is damaged ({why})",
                                hint="restore from another target, or run `syncd verify`")

    def _decode(self, ref: ObjectRef, stored: BinaryIO, plain: Path, where: str) -> None:
        with open(plain, "wb", opener=private_opener) as out:
            codec.decode(stored, out, ref.codec, where)

    def delete_object(self, name: str) -> None:
        self.backend.delete(self._key(name))

    # -- delivery: what the one delivery path (syncd.delivery.deliver) asks of a layout --------------
    # A plain target is read back like the local archive: what it holds is its own manifest, and
    # objects are copied as they are stored locally.

    def delivered(self, manifest: Manifest, state: SourceState) -> tuple[int, list[ObjectRef]] | None:
        """(manifest size, objects) this target holds once `manifest` was delivered here, if known."""
        return len(manifest.to_bytes()), manifest.objects()

    def delivered_before(self, state: SourceState) -> bool:
        """Whether this state dir has written here before (so a missing manifest means a lost one)."""
        return state.cursor(self.cursor_key) is not None

    def holding(self, state: SourceState) -> Manifest | None:
        """What this target holds of the source, or None if it holds no manifest."""
        return self.manifest()

    def send(self, local: Archive, manifest: Manifest, held: Manifest, state: SourceState) -> Sent:
        """Upload every object of `manifest` missing here or of another size (damaged): one listing."""
        present, had = self.stored_objects(), {ref.name for ref in held.objects()}
        sent, repaired = 0, 0
        for ref in manifest.objects():
            if present.get(ref.name) != ref.size:  # missing, or damaged: sent (again)
                local.copy_to(ref, self)
                sent += ref.size
                repaired += ref.name in had
        note = f"it held {repaired} damaged or missing object(s): sent again" if repaired else None
        return Sent(manifest, sent, note)

    def commit(self, manifest: Manifest, state: SourceState) -> int:
        """Write the manifest, the target's commit point; its size."""
        return self.write_manifest(manifest)

    def settle(self, state: SourceState) -> None:
        """After the manifest written by `commit` was found whole: what the layout keeps about it."""

    def media_area(self, areas: MediaAreas[AreaT]) -> AreaT:
        """Where the source's media lies here, as `areas` builds it for this layout: the target's
        shared store, in the clear."""
        return areas.plain(self)


def must_hold(archive: Archive, manifest_size: int | None, refs: list[ObjectRef]) -> None:
    """Check, with one listing, that what was just written landed whole; a manifest that didn't is removed,
    so the next pass delivers again instead of finding a damaged one."""
    wrong = archive.lacks(manifest_size, refs)
    if not wrong:
        return
    if archive.manifest_name in wrong:
        archive.backend.delete(archive._key(archive.manifest_name))
    shown = ", ".join(f"{archive.folder}/{name}" for name in wrong[:3]) + (" …" if len(wrong) > 3 else "")
    raise CorruptObject(f"{archive.location}: {shown} did not land whole (missing or another size after upload)",
                        hint="the server or a proxy in between damages uploads; the next pass sends them again")
