"""Reading the SQLite file format directly: b-tree pages, overflow chains, the freelist.

Just enough of https://www.sqlite.org/fileformat2.html to tell which table a
page belongs to and which rowids it covers, by reading interior pages only
(about 1% of a file). Anything unexpected raises `Unmappable`, and the caller
falls back to comparing whole tables: a wrong map must never hide a change.
"""

from __future__ import annotations

import os
import struct
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


@dataclass
class Tree:
    """The pages of one b-tree. For a table b-tree, its leaves in key order, each with the
    largest rowid it may hold (None: no upper bound); a leaf holds keys above the previous one's."""

    root: int
    pages: set[int] = field(default_factory=set)
    leaves: list[tuple[int, int | None]] = field(default_factory=list)
    levels: list[list[tuple[int, int | None]]] = field(default_factory=list)  # interior pages, by depth

    def ranges(self) -> dict[int, tuple[int | None, int | None]]:
        """Leaf page → (exclusive lower, inclusive upper) rowid bound."""
        pages = [page for page, _ in self.leaves]
        uppers = [upper for _, upper in self.leaves]
        return dict(zip(pages, zip([None] + uppers[:-1], uppers)))


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
        self._parsed: dict[int, tuple] = {}  # interior page → its children, parsed once

    def close(self) -> None:
        os.close(self.fd)

    def read(self, page: int) -> bytes:
        if not 1 <= page <= self.page_count:
            raise Unmappable(f"page {page} is outside the file")
        return os.pread(self.fd, self.page_size, (page - 1) * self.page_size)

    # -- b-trees ----------------------------------------------------------------

    def tree(self, root: int) -> Tree:
        """Walk a b-tree level by level through its interior pages; leaves are listed, not read."""
        tree = Tree(root)
        level: list[tuple[int, int | None]] = [(root, None)]
        while True:
            tree.pages.update(page for page, _ in level)
            if len(tree.pages) != sum(len(lv) for lv in tree.levels) + len(level):
                raise Unmappable(f"a page appears twice in the b-tree rooted at {root}")
            tree.levels.append(level)
            # A b-tree is balanced: if one page of a level is a leaf, all are.
            if self._kind(level[0][0]) in (LEAF_TABLE, LEAF_INDEX):
                tree.levels.pop()
                tree.leaves = level
                return tree
            below = []
            for page, upper in level:
                children, rightmost = self._children(page)
                below.extend(children)
                below.append((rightmost, upper))
            level = below

    def _kind(self, page: int) -> int:
        return self.read(page)[HEADER_SIZE if page == 1 else 0]

    def _children(self, page: int) -> tuple[list[tuple[int, int | None]], int]:
        """An interior page's children with the largest rowid each holds, and its rightmost child."""
        cached = self._parsed.get(page)
        if cached is None:
            cached = self._parsed[page] = self._parse_interior(page, self.read(page))
        return cached

    def _parse_interior(self, page: int, data: bytes) -> tuple[list[tuple[int, int | None]], int]:
        start = HEADER_SIZE if page == 1 else 0
        kind = data[start]
        if kind not in (INTERIOR_TABLE, INTERIOR_INDEX):
            raise Unmappable(f"page {page} should be an interior b-tree page")
        cells = int.from_bytes(data[start + 3:start + 5], "big")
        rightmost = int.from_bytes(data[start + 8:start + 12], "big")
        offsets = struct.unpack_from(f">{cells}H", data, start + 12)
        if kind == INTERIOR_INDEX:
            return [(struct.unpack_from(">I", data, at)[0], None) for at in offsets], rightmost
        children = []
        for at in offsets:
            child, first = struct.unpack_from(">IB", data, at)
            key = first if first < 0x80 else varint(data, at + 4)[0]
            children.append((child, key))
        return children, rightmost

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
        self._parsed = {}

    def read(self, page: int) -> bytes:
        if page in self.old_pages:
            return self.old_pages[page]
        return super().read(page)

    def _children(self, page: int) -> tuple[list[tuple[int, int | None]], int]:
        # An unchanged page has the same children before and after: parse it once for both.
        if page not in self.old_pages and page <= self._current.page_count:
            return self._current._children(page)
        return super()._children(page)

    def close(self) -> None:
        pass  # the current file owns the descriptor
