"""Which rows may have changed since the last version, found in layers, each cheaper than the next.

1. *Unchanged*: the phone's files have the inode, size, mtime and ctime they had when last
   archived; not a page is read.
2. *Which pages*: the snapshot kept the old bytes of every page it rewrote or checkpointed;
   those that differ from the new bytes changed.
3. *Which rows*: walking every b-tree through its interior pages (about 1% of a file) maps each
   changed or moved leaf to its table and the rowid range it covers; only those ranges are
   compared with the mirror. A range from the old tree catches deletions, one from the new tree
   insertions, and either catches updates.
4. *Full*: wherever the map can't be trusted (no previous state, VACUUM, page size or schema
   change, a changed page that belongs to no known tree, freelist or overflow chain) every table
   is compared in full.

A range is (exclusive lower, inclusive upper) rowid bound; None leaves that side open.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .btree import PageFile
    from .snapshot import Snapshot

# Past this share of changed pages, comparing everything is as cheap and simpler.
FULL_SHARE = 0.25

Range = tuple[int | None, int | None]


@dataclass
class Plan:
    """Which comparison a pass runs, why, and (for an incremental one) where to look."""

    path: str  # "unchanged", "incremental" or "full"
    reason: str
    ranges: dict[str, list[Range]] = field(default_factory=dict)  # rowid tables: the ranges to compare
    whole: set[str] = field(default_factory=set)  # tables to compare entirely

    @property
    def full(self) -> bool:
        return self.path == "full"

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def full(reason: str) -> Plan:
    return Plan("full", reason)


def plan_changes(snapshot: Snapshot, *, force_full: bool = False) -> Plan:
    """Decide what the mirror must compare to absorb `snapshot`."""
    if snapshot.unchanged:
        return Plan("unchanged", "the phone's files are as they were when last archived")
    if force_full:
        return full("asked for (--full)")
    if snapshot.past is None:
        return full(snapshot.why_full or "no previous state to compare with")
    # Imported here: a pass with nothing new ends above without reading a page (see syncd.sync).
    from .btree import PageFile, PastPageFile, Unmappable

    new = PageFile(str(snapshot.path))
    try:
        old = PastPageFile(new, snapshot.past, snapshot.past_page_count)
        return _plan(snapshot, old, new)
    except Unmappable as e:
        return full(f"the page map can't be trusted: {e}")
    except (IndexError, struct.error):
        # A cell pointing outside its page: a damaged file, which the full comparison reads
        # through SQLite and reports as such.
        return full("the page map can't be trusted: a page doesn't parse")
    finally:
        new.close()


def _plan(snapshot: Snapshot, old: PageFile, new: PageFile) -> Plan:
    if old.header[40:44] != new.header[40:44]:
        return full("the schema changed, or VACUUM rebuilt the file")
    changed = {n for n, data in snapshot.past.items() if n <= new.page_count and new.read(n) != data}
    changed |= set(range(old.page_count + 1, new.page_count + 1))  # added at the end
    changed |= set(range(new.page_count + 1, old.page_count + 1))  # cut off the end
    if len(changed) > FULL_SHARE * new.page_count:
        return full(f"{len(changed)} of {new.page_count} pages changed (VACUUM?)")
    plan = Plan("incremental", f"{len(changed)} changed pages")
    if not changed:
        return plan
    accounted = old.bookkeeping() | new.bookkeeping() | old.freelist() | new.freelist()
    moved: list[tuple[PageFile, int]] = []  # leaves that changed or moved, as they were and are
    for name, root, kind in _trees(snapshot):
        if kind == "index":
            continue  # its pages are told by their type below: walking big indexes costs more
        before, after = old.survey(root, changed), new.survey(root, changed)
        accounted |= before.pages() | after.pages()
        # A leaf under a changed parent may have left the tree (then) or joined it (now).
        gone = before.changed_leaves | {p: b for p, b in before.reparented.items() if p not in after.reparented}
        came = after.changed_leaves | {p: b for p, b in after.reparented.items() if p not in before.reparented}
        moved += [(old, p) for p in gone] + [(new, p) for p in came]
        if kind == "rowid" and (gone or came):
            plan.ranges[name] = merge(list(gone.values()) + list(came.values()))
        elif kind == "without rowid" and changed & (before.pages() | after.pages()):
            # Its b-tree keeps rows in interior pages too, so any touched page may hold a change.
            plan.whole.add(name)
    # A changed page in no table's b-tree that is (or was) an index b-tree page belongs to an
    # index: tables, WITHOUT ROWID ones included, were all walked. Indexes hold no row of their own.
    unattributed = {p for p in changed - accounted if not (old.is_index_page(p) or new.is_index_page(p))}
    # What is left should be overflow pages of the cells of moved leaves (long messages, blobs).
    for view, page in moved:
        if not unattributed:
            break
        unattributed -= view.overflow(page)
    if unattributed:
        return full(f"{len(unattributed)} changed pages belong to nothing it knows (e.g. page {min(unattributed)})")
    return plan


def _trees(snapshot: Snapshot) -> list[tuple[str, int, str]]:
    """Every b-tree: (name, root page, "rowid" | "without rowid" | "index" | "schema")."""
    import apsw

    from ..sqlite.schema import read_schema

    db = apsw.Connection(str(snapshot.path))
    try:
        shapes = {e.name: e.shape for e in read_schema(db) if e.shape}
        roots = db.execute("SELECT name, rootpage FROM sqlite_schema WHERE rootpage > 0").fetchall()
    finally:
        db.close()
    trees = [("sqlite_schema", 1, "schema")]
    for name, root in roots:
        shape = shapes.get(name)
        kind = "index" if shape is None else ("rowid" if shape.key is None else "without rowid")
        trees.append((name, root, kind))
    return trees


def merge(ranges: list[Range]) -> list[Range]:
    """Sorted, with overlapping and touching ranges joined."""
    low = lambda r: float("-inf") if r[0] is None else r[0]  # noqa: E731
    high = lambda r: float("inf") if r[1] is None else r[1]  # noqa: E731
    merged: list[Range] = []
    for r in sorted(ranges, key=low):
        if merged and low(r) <= high(merged[-1]):
            last = merged[-1]
            merged[-1] = (last[0], None if high(r) == float("inf") or last[1] is None else max(last[1], r[1]))
        else:
            merged.append(r)
    return merged
