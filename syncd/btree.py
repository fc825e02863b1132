"""Reading the SQLite file format directly: b-tree pages, overflow chains, the freelist.

Just enough of https://www.sqlite.org/fileformat2.html to tell which table a
page belongs to and which rowids it covers, by reading interior pages only
(about 1% of a file). Anything unexpected raises `Unmappable`, and the caller
falls back to comparing whole tables: a wrong map must never hide a change.
"""

from __future__ import annotations

import os
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

    def ranges(self) -> dict[int, tuple[int | None, int | None]]:
        """Leaf page → (exclusive lower, inclusive upper) rowid bound."""
        out, lower = {}, None
        for page, upper in self.leaves:
            out[page] = (lower, upper)
            lower = upper
        return out


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

    def close(self) -> None:
        os.close(self.fd)

    def read(self, page: int) -> bytes:
        if not 1 <= page <= self.page_count:
            raise Unmappable(f"page {page} is outside the file")
        return os.pread(self.fd, self.page_size, (page - 1) * self.page_size)

    # -- b-trees ----------------------------------------------------------------

    def tree(self, root: int) -> Tree:
        """Walk a b-tree through its interior pages; leaves are listed, not read."""
        tree = Tree(root)
        self._visit(tree, root, None, is_leaf=False)
        return tree

    def _visit(self, tree: Tree, page: int, upper: int | None, is_leaf: bool) -> None:
        if page in tree.pages:
            raise Unmappable(f"page {page} appears twice in the b-tree rooted at {tree.root}")
        tree.pages.add(page)
        if is_leaf:
            tree.leaves.append((page, upper))
            return
        data = self.read(page)
        start = HEADER_SIZE if page == 1 else 0
        kind = data[start]
        if kind in (LEAF_TABLE, LEAF_INDEX):
            tree.leaves.append((page, upper))
            return
        if kind not in (INTERIOR_TABLE, INTERIOR_INDEX):
            raise Unmappable(f"page {page} is not a b-tree page")
        cells = int.from_bytes(data[start + 3:start + 5], "big")
        rightmost = int.from_bytes(data[start + 8:start + 12], "big")
        children = []
        for n in range(cells):
            at = int.from_bytes(data[start + 12 + 2 * n:start + 14 + 2 * n], "big")
            child = int.from_bytes(data[at:at + 4], "big")
            key = varint(data, at + 4)[0] if kind == INTERIOR_TABLE else None
            children.append((child, key))
        children.append((rightmost, upper))
        # A b-tree is balanced: if the first child is a leaf, all are, and leaves need no reading.
        leaves = self.read(children[0][0])[0] in (LEAF_TABLE, LEAF_INDEX)
        for child, key in children:
            self._visit(tree, child, key, is_leaf=leaves)

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
        for n in range(int.from_bytes(data[start + 3:start + 5], "big")):
            at = int.from_bytes(data[start + 8 + 2 * n:start + 10 + 2 * n], "big")
            size, at = varint(data, at)
            if kind == LEAF_TABLE:
                at = varint(data, at)[1]
            if size <= most:
                continue
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

    def read(self, page: int) -> bytes:
        if page in self.old_pages:
            return self.old_pages[page]
        return super().read(page)

    def close(self) -> None:
        pass  # the current file owns the descriptor
