"""What the search box calls: the hits of `syncd search`'s index in the source shown, read against the version shown.

The index (syncd.reading.search) holds every text every message had, with the versions it
held each one. A hit is *shown* when the version being browsed held that text (its status
then is that version's, from history: present, edited, recalled, deleted); otherwise it is
from another version (an earlier text since edited, or a message not there yet) and says
which, with its status as of the latest version. One hit per message: the text the shown
version held when that one matches, else the latest matching text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..reading.model import DELETED, PRESENT
from ..reading.search import Hit
from .shelf import Opened

MAX_HITS = 200
MAX_QUERY = 200  # characters: a query comes from the browser

Search = Callable[[str, str, int], Sequence[Hit]]  # (source, query, limit) → hits, newest indexed first


@dataclass(frozen=True)
class Found:
    """A message whose text holds the query."""

    hit: Hit
    shown: bool  # the version shown held this text; else it is from version `hit.version`
    status: str  # as of the version shown when `shown`, else as of the latest version

    @property
    def conversation(self) -> str:
        return self.hit.conversation

    @property
    def id(self) -> object:
        return self.hit.id

    @property
    def text(self) -> str:
        return self.hit.text

    @property
    def time_ms(self) -> int | None:
        """The message's time in ms; None for one past what a date holds (year 10,000 on: damaged or hostile)."""
        try:
            return round(datetime.fromisoformat(self.hit.time.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None


def find(opened: Opened, query: str, search: Search | None, limit: int = MAX_HITS) -> list[Found]:
    """At most `limit` messages of the open version's source whose texts hold `query`."""
    query = query.strip()[:MAX_QUERY]
    if not query or search is None or opened.reading.profile is None:
        return []
    limit = max(1, min(limit, MAX_HITS))
    number = opened.version.number
    chosen: dict[object, Found] = {}
    for hit in search(opened.source, query, limit * 4):  # a message's several texts may each match
        shown = hit.version <= number and (hit.until is None or number < hit.until)
        kept = chosen.get(hit.id)
        if kept is None or (shown and not kept.shown):
            chosen[hit.id] = Found(hit, shown, _status(opened, hit) if shown else hit.status)
    return list(chosen.values())[:limit]


def _status(opened: Opened, hit: Hit) -> str:
    """The message's status in the version shown, as history gives it."""
    found = opened.reading.annotations.history.get(hit.id)
    if found is not None:
        return found.status
    if any(m.id == hit.id for m in opened.deleted.get(hit.conversation, ())):
        return DELETED
    return PRESENT
