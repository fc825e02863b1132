"""Reading the SQLite file format directly: b-tree pages, overflow chains, the freelist.

Just enough of https://www.sqlite.org/fileformat2.html to tell which table a
page belongs to and which rowids it covers, by reading interior pages only
(about 1% of a file). Anything unexpected raises `Unmappable`, and the caller
falls back to comparing whole tables: a wrong map must never hide a change.
"""

from __future__ import annotations

import os
import struct
from array import array
from dataclasses import dataclass, field

HEADER_SIZE = 100
INTERIOR_INDEX, INTERIOR_TABLE, LEAF_INDEX, LEAF_TABLE = 2, 5, 10, 13


class Unmappable(Exception):
    """The file doesn't look the way the map needs; compare in full instead."""


def varint(buf: bytes, i: int) -> tuple[int, int]:
    """SQLite's big-endian varint at `buf[i]`: (value, index after it)."""
    value = 0
    for n in range(8):
        byte = buf[i + n]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + n + 1
    return (value << 8) | buf[i + 8], i + 9


Bounds = tuple[int | None, int | None]  # (exclusive lower, inclusive upper) rowid; None: open
MAX_DEPTH = 20  # far deeper than any real b-tree; deeper means a loop


@dataclass
class Survey:
    """What walking one b-tree found: its interior pages, and its leaves that changed or sit
    under an interior page that changed (so may have moved), each with its rowid bounds
    (both None in index b-trees)."""

    interior: set[int] = field(default_factory=set)
    changed_leaves: dict[int, Bounds] = field(default_factory=dict)
    reparented: dict[int, Bounds] = field(default_factory=dict)

    def pages(self) -> set[int]:
        return self.interior | self.changed_leaves.keys() | self.reparented.keys()


class PageFile:
    """Pages of a SQLite file without WAL content (a checkpointed private copy)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDONLY)
        header = os.pread(self.fd, HEADER_SIZE, 0)
        size = int.from_bytes(header[16:18], "big")
        self.page_size = 65536 if size == 1 else size
        self.usable = self.page_size - header[20]
        self.page_count = os.fstat(self.fd).st_size // self.page_size
        self.header = header
        self._child_cache: dict[int, array] = {}  # each interior page's children, parsed once

    def close(self) -> None:
        os.close(self.fd)

    def read(self, page: int) -> bytes:
        if not 1 <= page <= self.page_count:
            raise Unmappable(f"page {page} is outside the file")
        data = os.pread(self.fd, self.page_size, (page - 1) * self.page_size)
        if len(data) != self.page_size:
            raise Unmappable(f"page {page} is no longer in the file")
        return data

    # -- b-trees ----------------------------------------------------------------
    # Only interior pages are read (about 1% of a file): a leaf is known by its parent, and
    # whether it changed by a set intersection with its parent's children.

    def survey(self, root: int, changed: set[int]) -> Survey:
        """Walk a b-tree through its interior pages, noting the leaves `changed` touches."""
        survey = Survey()
        if self._is_leaf(root):
            if root in changed:
                survey.changed_leaves[root] = (None, None)
            return survey
        level: list[tuple[int, int | None, int | None]] = [(root, None, None)]
        for _ in range(MAX_DEPTH):
            survey.interior.update(page for page, _, _ in level)
            # A b-tree is balanced: if one child on a level is a leaf, all are.
            if self._is_leaf(self._children(level[0][0])[0]):
                break
            level = [child for page, lower, upper in level for child in self._bounded(page, lower, upper)]
        else:
            raise Unmappable(f"the b-tree rooted at page {root} is deeper than any real one")
        for page, lower, upper in level:
            hits = changed.intersection(self._children(page))
            if hits or page in changed:
                for child, low, high in self._bounded(page, lower, upper):
                    if child in hits:
                        survey.changed_leaves[child] = (low, high)
                    if page in changed:
                        survey.reparented[child] = (low, high)
        return survey

    def is_index_page(self, page: int) -> bool:
        """Whether `page` exists and is laid out as a page of an index b-tree."""
        if not 1 <= page <= self.page_count:
            return False
        return self.read(page)[HEADER_SIZE if page == 1 else 0] in (INTERIOR_INDEX, LEAF_INDEX)

    def _is_leaf(self, page: int) -> bool:
        kind = self.read(page)[HEADER_SIZE if page == 1 else 0]
        if kind not in (LEAF_TABLE, LEAF_INDEX, INTERIOR_TABLE, INTERIOR_INDEX):
            raise Unmappable(f"page {page} should be a b-tree page")
        return kind in (LEAF_TABLE, LEAF_INDEX)

    def _bounded(self, page: int, lower: int | None, upper: int | None) -> list[tuple[int, int | None, int | None]]:
        """An interior page's children with the rowid bounds of each."""
        children, keys = self._children(page), self._keys(page)
        if keys is None:
            return [(child, None, None) for child in children]
        bounds = [lower, *keys, upper]
        return list(zip(children, bounds[:-1], bounds[1:]))

    def _children(self, page: int) -> array:
        """An interior page's child pages, the rightmost last."""
        children = self._child_cache.get(page)
        if children is None:
            data, start = self._interior_page(page)
            cells = int.from_bytes(data[start + 3:start + 5], "big")
            children = array("I", (struct.unpack_from(">I", data, at)[0]
                                   for at in struct.unpack_from(f">{cells}H", data, start + 12)))
            children.append(int.from_bytes(data[start + 8:start + 12], "big"))
            self._child_cache[page] = children
        return children

    def _keys(self, page: int) -> array | None:
        """The largest rowid under each child but the rightmost; None in an index b-tree.
        Parsed only for pages whose children matter, so rarely."""
        data, start = self._interior_page(page)
        if data[start] == INTERIOR_INDEX:
            return None
        cells = int.from_bytes(data[start + 3:start + 5], "big")
        keys = array("q")
        for at in struct.unpack_from(f">{cells}H", data, start + 12):
            first = data[at + 4]
            keys.append(first if first < 0x80 else varint(data, at + 4)[0])
        return keys

    def _interior_page(self, page: int) -> tuple[bytes, int]:
        data, start = self.read(page), HEADER_SIZE if page == 1 else 0
        if data[start] not in (INTERIOR_TABLE, INTERIOR_INDEX):
            raise Unmappable(f"page {page} should be an interior b-tree page")
        return data, start

    # -- pages that hold no rows of their own ---------------------------------------

    def freelist(self) -> set[int]:
        pages, trunk, seen = set(), int.from_bytes(self.header[32:36], "big"), 0
        while trunk:
            data = self.read(trunk)
            pages.add(trunk)
            count = int.from_bytes(data[4:8], "big")
            pages.update(int.from_bytes(data[8 + 4 * i:12 + 4 * i], "big") for i in range(count))
            trunk = int.from_bytes(data[0:4], "big")
            seen += 1
            if seen > self.page_count:
                raise Unmappable("the freelist loops")
        return pages

    def bookkeeping(self) -> set[int]:
        """Page 1, pointer-map pages (auto_vacuum) and the lock-byte page."""
        pages = {1}
        if int.from_bytes(self.header[52:56], "big"):
            step = self.usable // 5 + 1
            pages.update(range(2, self.page_count + 1, step))
        lock = 1073741824 // self.page_size + 1
        pages.add(lock)
        return pages

    def overflow(self, page: int) -> set[int]:
        """Overflow pages of the cells of a leaf page."""
        data = self.read(page)
        start = HEADER_SIZE if page == 1 else 0
        kind = data[start]
        if kind not in (LEAF_TABLE, LEAF_INDEX):
            return set()
        u = self.usable
        most = u - 35 if kind == LEAF_TABLE else (u - 12) * 64 // 255 - 23
        least = (u - 12) * 32 // 255 - 23
        chains = set()
        cells = int.from_bytes(data[start + 3:start + 5], "big")
        for at in struct.unpack_from(f">{cells}H", data, start + 8):
            if data[at] < 0x80:
                continue  # a payload under 128 bytes never spills
            size, at = varint(data, at)
            if size <= most:
                continue
            if kind == LEAF_TABLE:
                at = varint(data, at)[1]
            local = least + (size - least) % (u - 4)
            local = local if local <= most else least
            first = int.from_bytes(data[at + local:at + local + 4], "big")
            chains |= self._chain(first, size - local)
        return chains

    def _chain(self, page: int, remaining: int) -> set[int]:
        pages = set()
        while page and remaining > 0:
            if page in pages:
                raise Unmappable("an overflow chain loops")
            pages.add(page)
            page = int.from_bytes(self.read(page)[:4], "big")
            remaining -= self.usable - 4
        return pages


class PastPageFile(PageFile):
    """The same file as it was before some pages changed: their old bytes overlay the new file."""

    def __init__(self, current: PageFile, old_pages: dict[int, bytes], old_page_count: int):
        self.fd = current.fd
        self.page_size = current.page_size
        self.usable = current.usable
        self.page_count = old_page_count
        self.old_pages = old_pages
        self.header = self.read(1)[:HEADER_SIZE]
        self._current = current
        self._child_cache = {}

    def read(self, page: int) -> bytes:
        if page in self.old_pages:
            return self.old_pages[page]
        return super().read(page)

    def _children(self, page: int) -> array:
        # An unchanged page has the same children before and after: parse it once for both.
        if page not in self.old_pages and page <= self._current.page_count:
            return self._current._children(page)
        return super()._children(page)

    def close(self) -> None:
        pass  # the current file owns the descriptor
