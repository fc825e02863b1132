"""Where a media store's objects lie on a backend, in the clear or sealed.

Every object is one of three kinds (`objects`: packs and chunks; `index`; `listings`) and has a
*plain name*, the SHA-256 of its plain bytes. An area maps that name to a *key* (the name it is
stored under) and reads back only bytes whose plain hash leads to the key asked for, so a target
can neither serve other bytes under a name nor more than a bound.

    PlainArea   media/<kind>/<name> (objects fanned out by two hex digits); key = plain name
    SealedArea  <folder>/media/<kind>/<key>, each object age-encrypted to the recipients, its key a
                keyed hash (HMAC-SHA-256) of its plain name: no file name, hash of plain bytes or
                plain size shows on the target. The 32-byte key lives in the state dir and, sealed
                to the same recipients, in <folder>/media/key.age, where `restore` finds it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from typing import BinaryIO, Callable, Protocol, Union

from ..backend import Backend
from ..errors import CorruptObject, NotFound, TooLarge

KINDS = ("objects", "index", "listings")  # in the order they are written: what names others comes after them
HEX = re.compile(r"[0-9a-f]{64}")
# age adds a header (about 200 bytes a recipient, plus random grease) and 16 bytes per 64 KiB.
SEAL_SLACK = 64 << 10
MEDIA_KEY_BYTES = 32
KEY_OBJECT = "key.age"
SKIP_BLOCK = 1 << 20  # a stream that can't seek is read past in blocks of this, not held
DAMAGED_HINT = "the target holds damaged or forged media; run `syncd verify` on it"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PlainArea:
    """The store in the clear under `root` ("media/" on a target, as the first increment laid it out)."""

    def __init__(self, backend: Backend, root: str = "media/"):
        self.backend, self.root = backend, root

    @property
    def location(self) -> str:
        return self.backend.location

    def key(self, name: str) -> str:
        return name

    def path(self, kind: str, key: str) -> str:
        return f"{self.root}objects/{key[:2]}/{key}" if kind == "objects" else f"{self.root}{kind}/{key}"

    def names(self, kind: str) -> dict[str, int]:
        """Every key stored of `kind`, with its stored size."""
        prefix = f"{self.root}{kind}/"
        # Only names the store gives: a source named `media` keeps its own objects in `media/objects/`.
        found = ((info.name.rsplit("/", 1)[1], info.size) for info in self.backend.list(prefix))
        return {key: size for key, size in found if HEX.fullmatch(key)}

    def write(self, kind: str, name: str, data: bytes, batch: Batch | None = None) -> int:
        """Store plain bytes named `name` (through `batch`, if given: see `batch`); the bytes written."""
        (batch or self.backend).write(self.path(kind, self.key(name)), io.BytesIO(self.seal(data)))
        return len(data)

    def batch(self) -> Batch | None:
        """Where a pass writes objects that are durable, and named, only at the batch's commit (a
        folder's: syncd_folder.FolderBatch); None where each write is durable alone."""
        # Asked of the class: a wrapper that passes other calls on (a test's failing link) still
        # sees each write.
        make = getattr(type(self.backend), "batch", None)
        return make(self.backend) if make is not None else None

    def copy_from(self, local: PlainArea, kind: str, name: str, size: int) -> int:
        """Store object `name` of `local` (syncd's own store in the state dir, its bytes named when
        written there) here; the plain bytes written. In the clear, a folder on the local store's
        filesystem gets a hard link (the object is immutable and named by its bytes, as `git clone
        --local` links objects); otherwise it is streamed, not held: in the kernel (sendfile) from one
        folder to another."""
        link = getattr(self.backend, "link", None)
        if link is not None and link(self.path(kind, self.key(name)), local.backend, local.path(kind, local.key(name))):
            return size
        with local.backend.open(local.path(kind, local.key(name))) as stream:
            self.backend.write(self.path(kind, self.key(name)), stream)
        return size

    def seal(self, data: bytes) -> bytes:
        return data

    def unseal(self, data: bytes, where: str) -> bytes:
        return data

    def stored_limit(self, limit: int) -> int:
        """The most bytes an object of at most `limit` plain bytes takes as stored."""
        return limit

    def holds_whole(self, stored: int, plain: int) -> bool:
        """Whether an object listed at `stored` bytes may be whole, its plain bytes `plain` long."""
        return stored == plain

    def read_range(self, kind: str, key: str, size: int, offset: int, length: int) -> bytes:
        """Bytes `offset` to `offset + length` of the object stored under `key`, `size` bytes long:
        only that range is read (skipped to, where the stream can't seek). Not checked against the
        key (that needs every byte): the caller checks them against the hash of the file they are."""
        where = f"{self.location}: {self.path(kind, key)}"
        if not 0 <= offset <= offset + length <= size:
            raise CorruptObject(f"media object {where}: a range beyond its end", hint=DAMAGED_HINT)
        try:
            with self.backend.open(self.path(kind, key), size) as f:
                _skip(f, offset)
                data = _read_exactly(f, length)
        except NotFound:
            raise CorruptObject(f"{where} is missing", hint="run `syncd verify` on the target") from None
        except TooLarge:
            data = b""
        if len(data) != length:
            raise CorruptObject(f"media object {where} is shorter than its index says", hint=DAMAGED_HINT)
        return data

    def read(self, kind: str, key: str, limit: int) -> bytes:
        """The plain bytes stored under `key`, at most `limit` of them, checked against the key."""
        where = f"{self.location}: {self.path(kind, key)}"
        stored_limit = self.stored_limit(limit)
        try:
            with self.backend.open(self.path(kind, key), stored_limit) as f:
                data = f.read(stored_limit + 1)
        except NotFound:
            raise CorruptObject(f"{where} is missing", hint="run `syncd verify` on the target") from None
        except TooLarge:
            data = b""
        plain = self.unseal(data, where) if len(data) <= stored_limit else b""
        if len(plain) > limit or self.key(digest(plain)) != key:
            raise CorruptObject(f"media object {where} does not match its name", hint=DAMAGED_HINT)
        return plain


def _skip(stream, count: int) -> None:
    if getattr(stream, "seekable", lambda: False)():
        stream.seek(count)
        return
    while count and (block := stream.read(min(count, SKIP_BLOCK))):
        count -= len(block)


def _read_exactly(stream, length: int) -> bytes:
    parts, got = [], 0
    while got < length and (block := stream.read(length - got)):
        parts.append(block)
        got += len(block)
    return b"".join(parts)


class SealedArea(PlainArea):
    """The store of one encrypted archive, in its folder: keys keyed by `media_key`."""

    def __init__(self, backend: Backend, folder: str, media_key: bytes, *, seal: Callable[[bytes], bytes] | None = None,
                 unseal: Callable[[bytes, str], bytes] | None = None):
        # The encryption comes from the caller (syncd.archive.crypto, a layer this one can't import):
        # `seal` to the archive's recipients when writing, `unseal` with identities when reading.
        super().__init__(backend, f"{folder}/media/")
        self.media_key, self._seal, self._unseal = media_key, seal, unseal

    def key(self, name: str) -> str:
        return hmac.new(self.media_key, name.encode(), hashlib.sha256).hexdigest()

    def path(self, kind: str, key: str) -> str:
        return f"{self.root}{kind}/{key}"

    def copy_from(self, local: PlainArea, kind: str, name: str, size: int) -> int:
        return self.write(kind, name, local.read(kind, name, size))  # sealed whole, so read whole

    def seal(self, data: bytes) -> bytes:
        return self._seal(data)

    def unseal(self, data: bytes, where: str) -> bytes:
        return self._unseal(data, where)

    def stored_limit(self, limit: int) -> int:
        return limit + SEAL_SLACK + limit // 1024

    def read_range(self, kind: str, key: str, size: int, offset: int, length: int) -> bytes:
        # age (through pyrage) decrypts a whole object, not a range of it: the object is read whole,
        # bounded by its size, and checked against its key.
        data = self.read(kind, key, size)
        if not 0 <= offset <= offset + length <= len(data) == size:
            raise CorruptObject(f"media object {self.path(kind, key)}: a range beyond its end", hint=DAMAGED_HINT)
        return data[offset:offset + length]

    def holds_whole(self, stored: int, plain: int) -> bool:
        # A sealed object's size differs by age's random header: its presence is what a listing shows.
        return True


def key_object(folder: str) -> str:
    return f"{folder}/media/{KEY_OBJECT}"


def read_media_key(backend: Backend, folder: str, unseal: Callable[[bytes, str], bytes]) -> bytes | None:
    """The media key sealed in an encrypted archive's folder (None if it holds no media)."""
    where = f"{backend.location}: {key_object(folder)}"
    try:
        with backend.open(key_object(folder), 4096) as f:
            raw = f.read(4097)
    except NotFound:
        return None
    except TooLarge:
        raw = b""
    key = unseal(raw, where) if raw else b""
    if len(key) != MEDIA_KEY_BYTES:
        raise CorruptObject(f"{where} is not a media key syncd wrote", hint="run `syncd verify` on the target")
    return key


Area = Union[PlainArea, SealedArea]


class Batch(Protocol):
    def write(self, name: str, data: BinaryIO) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


def as_area(store: Backend | Area) -> Area:
    """An area as given, or a backend's store in the clear."""
    return store if isinstance(store, PlainArea) else PlainArea(store)
