"""The media references of a database's messages, read with its app profile from the private replica.

Read only when the replica changed (its size and mtime are the key of a cache in the state dir, 0600):
a pass whose database did not change reads no message.
"""

from __future__ import annotations

import json
from pathlib import Path

import apsw
import pluggy

from ..capture.snapshot import REPLICA
from ..fsutil import atomic_write, private_dirs
from ..plugins import profile_for
from ..sqlite.guard import open_read_only
from .codec import MAX_META

CACHE = "references.json"
MAX_REFERENCE = 4096  # characters of one reference kept; longer is no path an app writes


def media_references(pm: pluggy.PluginManager, staging: Path, media_state: Path) -> list[str]:
    """Every distinct media reference the replica's messages hold ([] if no app profile reads it)."""
    replica = Path(staging) / REPLICA
    try:
        st = replica.stat()
    except FileNotFoundError:
        return []
    key = [st.st_size, st.st_mtime_ns, st.st_ino]
    cache = Path(media_state) / CACHE
    try:
        with open(cache, "rb") as f:
            saved = json.loads(f.read(MAX_META))
        if saved["key"] == key and isinstance(saved["references"], list):
            return [r for r in saved["references"] if isinstance(r, str)]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found: set[str] = set()
    db = open_read_only(replica)
    try:
        profile = profile_for(pm, db)
        if profile is not None:
            for message in profile(db).messages():
                found.update(r for r in message.media if isinstance(r, str) and len(r) <= MAX_REFERENCE)
    except apsw.Error:
        found = set()  # a database its profile can't read: no reference judged absent
    finally:
        db.close()
    references = sorted(found)
    private_dirs(cache.parent)
    atomic_write(cache, json.dumps({"key": key, "references": references}).encode())
    return references
