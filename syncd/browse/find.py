"""What the search box calls: `find(opened, query, limit)` → the messages of a version whose text holds the query.

This is the seam for `syncd search` (syncd.reading.search, being built beside this):
once it lands, `find` asks its index instead, and the pages stay as they are. Until then
it scans the open version: every message's text (a recalled one's text before the recall,
a deleted one's last text), compared casefolded, in the app's storage order. That costs a
pass over the version (about a second for a million messages) and finds what
`syncd search` will find in the version shown, Chinese included (a substring needs no
segmenting).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from ..app import Message
from ..reading.model import display_text
from .shelf import Opened

MAX_HITS = 200
MAX_QUERY = 200  # characters: a query comes from the browser


@dataclass(frozen=True)
class Found:
    """A message whose text holds the query."""

    message: Message
    text: str
    status: str  # present, edited, recalled, deleted: as of the version shown


def find(opened: Opened, query: str, limit: int = MAX_HITS) -> list[Found]:
    """At most `limit` messages of the open version whose text holds `query` (case ignored)."""
    wanted = query.strip().casefold()[:MAX_QUERY]
    if not wanted or opened.reading.profile is None:
        return []
    return list(itertools.islice(_scan(opened, wanted), max(1, min(limit, MAX_HITS))))


def _scan(opened: Opened, wanted: str) -> Iterator[Found]:
    reading = opened.reading
    gone = (m for messages in opened.deleted.values() for m in messages)
    for message in itertools.chain(reading.profile.messages(), gone):
        history = reading.history_of(message)
        text = display_text(message, history)
        earlier = [str(h.get("text")) for h in history.earlier]
        if any(wanted in t.casefold() for t in (text or "", *earlier)):
            yield Found(message, text or "", history.status)
