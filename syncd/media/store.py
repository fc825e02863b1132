"""The content-addressed store: each file kept once, keyed by the SHA-256 of its bytes.

Small files are packed into objects of about PACK_SIZE, so a target never fills with millions of
stickers and thumbnails; large files are cut into CHUNK_SIZE chunks, each its own object, so an
upload that dies midway resumes with the chunks the target lacks. Every object is named by the hash
of its bytes and written once; the index that says where each file lies is written after them.

Objects are written by a few threads while the pass reads and hashes the next files (hashlib and
file writes release the GIL): at most WRITES_IN_FLIGHT objects wait, which bounds memory. In a
folder (the local store in the state dir) they go through a batch: written direct, durable and named
together every BATCH_BYTES and before the index (syncd.fsutil.SyncedTogether), not one wait per object.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from ..backend import Backend
from ..errors import CorruptObject
from .area import DAMAGED_HINT, Area, Batch, as_area
from .codec import MAX_META, digest, get_meta, is_hash, put_meta

SMALL_FILE = 1 << 20  # below this a file is packed with others
PACK_SIZE = 16 << 20
CHUNK_SIZE = 8 << 20
MAX_OBJECT = max(PACK_SIZE + SMALL_FILE, CHUNK_SIZE)
OBJECTS, INDEX = "media/objects/", "media/index/"
INDEX_FORMAT = 1
WRITERS = 4  # threads writing objects (a direct write waits on the disk) and hashing chunks while the pass hashes on
# Objects written to a folder are fsynced together, about this many bytes at a time, not one wait on
# the disk per object (see syncd.fsutil.SyncedTogether); all of a pass's before its index.
BATCH_BYTES = 256 << 20
WRITES_IN_FLIGHT = 4  # objects handed to the writers and not yet written: ~4 x PACK_SIZE of memory at most
# What a pass holds of its new files is bounded however many there are: a pack is sealed at PACK_FILES
# files (tiny stickers fill 16 MiB only by the hundred thousand), and the index of the files stored so
# far is written every INDEX_FILES, after the objects it names.
PACK_FILES = 10_000
INDEX_FILES = 10_000

# Where a piece of a file lies: (object hash, object size, offset, length).
Piece = tuple[str, int, int, int]


def object_name(hash_: str) -> str:
    return f"{OBJECTS}{hash_[:2]}/{hash_}"


def chunks(stream, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while block := stream.read(size):
        yield block


class MediaStore:
    """The store on one target: what it holds, and what a pass adds (packed and chunked)."""

    def __init__(self, store: Backend | Area, files: dict[str, list[Piece]] | None = None):
        self.area = as_area(store)
        self._objects: dict[str, int] | None = None
        self.files = load_index(self.area) if files is None else files
        self._pack = bytearray()
        self._packed: dict[str, tuple[int, int]] = {}  # file hash -> (offset, length) in the open pack
        self._new: dict[str, list[Piece]] = {}
        self._writers: ThreadPoolExecutor | None = None
        self._writing: deque[Future] = deque()
        self._batch: Batch | None = None  # this pass's objects, durable together before the index (a folder's)
        self._batched = 0  # bytes written through the batch
        self.bytes_sent = self.objects_sent = 0

    @property
    def objects(self) -> dict[str, int]:
        """The objects the store holds, by name (listed when first needed): a chunk already there (an
        earlier, interrupted upload, or the same video elsewhere) is not sent again."""
        if self._objects is None:
            self._objects = self.area.names("objects")
        return self._objects

    def has(self, file_hash: str) -> bool:
        return file_hash in self.files or file_hash in self._new or file_hash in self._packed

    def add_small(self, file_hash: str, data: bytes) -> None:
        if self.has(file_hash):
            return
        if not data:  # an empty file lies nowhere: no pieces
            self.add_large(file_hash, [])
            return
        if self._pack and (len(self._pack) + len(data) > PACK_SIZE or len(self._packed) >= PACK_FILES):
            self._seal_pack()
        self._packed[file_hash] = (len(self._pack), len(data))
        self._pack += data

    def add_stream(self, stream: BinaryIO, size: int, unchanged: Callable[[], bool] = lambda: True) -> str | None:
        """Store the file `stream` holds, `size` bytes as listed; its hash, or None if it is not that
        size or `unchanged()` says it changed while read (the pass leaves it to the next). Chunks
        read before that showed may be stored, named by no index: harmless, and reused later."""
        if size < SMALL_FILE:  # read as listed, and one byte more to see it grew: no buffer larger than the file
            data = stream.read(size + 1)
            file_hash = digest(data)
        elif size <= CHUNK_SIZE:  # one chunk: its name is the file's hash, computed once
            data = stream.read(size + 1)
            file_hash = digest(data)
            pieces = [self.add_chunk(data, file_hash)] if len(data) == size else []
        else:
            pieces, data, whole = [], b"", new_file_hash()
            read = 0
            while read <= size and (block := stream.read(CHUNK_SIZE)):
                name = self.hash_later(block)  # the chunk's hash beside the file's, on another core
                whole.update(block)
                read += len(block)
                pieces.append(self.add_chunk(block, name.result()))
            file_hash = whole.hexdigest()
        if (read if size > CHUNK_SIZE else len(data)) != size or not unchanged():
            return None
        if size < SMALL_FILE:
            self.add_small(file_hash, data)
        else:
            self.add_large(file_hash, pieces)
        return file_hash

    def add_chunk(self, data: bytes, name: str | None = None) -> Piece:
        """Store one chunk of a large file (unless the target has it), `name` its hash if known; where it lies."""
        return (self._put(data, name), len(data), 0, len(data))

    def hash_later(self, data: bytes) -> Future:
        """The SHA-256 name of `data`, computed in a writer thread (beside the caller's own hashing)."""
        return self._pool().submit(digest, data)

    def add_large(self, file_hash: str, pieces: list[Piece]) -> None:
        if not self.has(file_hash):
            self._new[file_hash] = pieces
            if len(self._new) >= INDEX_FILES:
                self._write_index()

    def commit(self) -> None:
        """Seal the open pack, then write the index of this pass's files after the objects it names."""
        if self._pack:
            self._seal_pack()
        self.close()  # every object written (or its error raised) before the index names it
        self._write_index()

    def _write_index(self) -> None:
        """Write the index of the files stored since the last one, once the objects it names are
        written and durable under their names."""
        while self._writing:
            self._writing.popleft().result()
        if self._batch is not None:
            self._batch.commit()
            self._batch = None
        if self._new:
            put_meta(self.area, "index", {"format": INDEX_FORMAT, "files": self._new})
            self.files.update(self._new)
            self._new = {}

    def _seal_pack(self) -> None:
        pack = bytes(self._pack)
        name = self._put(pack)
        for file_hash, (offset, length) in self._packed.items():
            self._new[file_hash] = [(name, len(pack), offset, length)]
        self._pack, self._packed = bytearray(), {}
        if len(self._new) >= INDEX_FILES:
            self._write_index()

    def close(self) -> None:
        """Wait for the objects being written; the first write's error, if any, is raised."""
        try:
            while self._writing:
                self._writing.popleft().result()
        except BaseException:
            self._keep_written()
            raise
        finally:
            if self._writers is not None:
                self._writers.shutdown(cancel_futures=True)
                self._writers = None

    def discard(self) -> None:
        """After a pass that failed: no writer left running, and the objects it wrote whole kept (no
        index names them; the next pass finds them there, as an interrupted upload's chunks)."""
        try:
            self.close()
        finally:
            self._keep_written()

    def _keep_written(self) -> None:
        if self._writers is not None:
            self._writers.shutdown(wait=True, cancel_futures=True)  # no write lands after this
            self._writers = None
        batch, self._batch = self._batch, None
        if batch is not None:
            try:
                batch.commit()
            except Exception:  # the disk that failed the pass: what isn't durable isn't named
                batch.discard()

    def _pool(self) -> ThreadPoolExecutor:
        if self._writers is None:
            self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="media-write")
        return self._writers

    def _checkpoint(self) -> None:
        """Commit the objects written so far, in a writer thread once their writes are done, and go
        on in a new batch: a pass killed midway loses at most BATCH_BYTES of written objects."""
        batch, self._batch = self._batch, None
        self._writing.append(self._pool().submit(_commit_after, batch, list(self._writing)))

    def _put(self, data: bytes, name: str | None = None) -> str:
        name = name or digest(data)
        if self.objects.get(name) != len(data):
            while len(self._writing) >= WRITES_IN_FLIGHT:
                self._writing.popleft().result()
            if self._batch is None:
                self._batch, self._batched = self.area.batch(), 0
            self._writing.append(self._pool().submit(self.area.write, "objects", name, data, self._batch))
            self._batched += len(data)
            if self._batch is not None and self._batched >= BATCH_BYTES:
                self._checkpoint()
            self.objects[name] = len(data)
            self.bytes_sent += len(data)
            self.objects_sent += 1
        return name


def _commit_after(batch: Batch, writes: list[Future]) -> None:
    for write in writes:
        write.result()
    batch.commit()


def load_index(store: Backend | Area) -> dict[str, list[Piece]]:
    """Every file the store holds, by hash: the union of its index objects, each checked."""
    area = as_area(store)
    files: dict[str, list[Piece]] = {}
    for key in sorted(area.names("index")):
        files.update(read_index(area, key))
    return files


def read_index(area: Area, key: str) -> dict[str, list[Piece]]:
    """The files one index object (stored under `key`) says where they lie, every entry checked."""
    name = key[:16] + "…"
    value = get_meta(area, "index", "", key=key)
    if not isinstance(value, dict) or value.get("format") != INDEX_FORMAT or not isinstance(value.get("files"), dict):
        raise CorruptObject(f"media index {name} is not an index syncd wrote",
                            hint="run `syncd verify` on the target")
    return {file_hash: checked_pieces(name, file_hash, pieces) for file_hash, pieces in value["files"].items()}


def checked_pieces(index: str, file_hash: object, pieces: object) -> list[Piece]:
    ok = is_hash(file_hash) and isinstance(pieces, list) and len(pieces) <= MAX_META
    out = []
    for piece in pieces if ok else ():
        if not (isinstance(piece, list) and len(piece) == 4 and is_hash(piece[0])
                and all(type(n) is int for n in piece[1:])):
            ok = False
            break
        _, size, offset, length = piece
        ok = ok and 0 < size <= MAX_OBJECT and 0 <= offset and 0 <= length and offset + length <= size
        out.append(tuple(piece))
    if not ok:
        raise CorruptObject(f"media index {index}: a damaged entry for {str(file_hash)[:16]}…",
                            hint="run `syncd verify` on the target")
    return out


def read_object(store: Backend | Area, name: str, size: int) -> bytes:
    """Object `name`, read no further than its recorded `size`, its bytes checked against its name."""
    area = as_area(store)
    data = area.read("objects", area.key(name), size)
    if len(data) != size:
        raise CorruptObject(f"media object {name[:16]}… does not match its hash", hint=DAMAGED_HINT)
    return data


def new_file_hash():
    return hashlib.sha256()
