"""A conversation's messages a page at a time, by keyset: (time, id) of the message a page starts after or ends before.

Never OFFSET: a page is read from the app's time index (`AppProfile.messages(conversation,
since, until)`), so page 2,000 of a 100,000-message chat costs what page 1 costs, and only
one page is held. The profile reads forward in time only; a page *before* a point (the
newest page, "older") bisects for the window ending at that point that holds one page,
probing with reads of at most a page each, then reads that window.

Messages deleted on the phone (kept by history) are merged in by time.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..app import Message
from .shelf import Opened

PAGE = 50
LATEST = 1 << 53  # ms: past any time a message can have (the year 285,000)
MAX_CURSOR = 400  # characters: a cursor comes back from the browser


@dataclass(frozen=True)
class Cursor:
    """A point in a timeline: just after/before the message `id` at `time`; `id` None: all of `time` is past it."""

    time: int
    id: str | None = None

    def encode(self) -> str:
        return str(self.time) if self.id is None else f"{self.time}~{self.id}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """A cursor from a URL, or None for a malformed one (then the page starts at the newest)."""
        if not text or len(text) > MAX_CURSOR:
            return None
        moment, sep, key = text.partition("~")
        try:
            time = int(moment)
        except ValueError:
            return None
        # A time no message can have would overflow the profile's reads (a float, an SQLite integer).
        return cls(time, key if sep else None) if -LATEST <= time <= LATEST else None

    @classmethod
    def of(cls, message: Message) -> Cursor:
        return cls(message.time, str(message.id))


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    older: Cursor | None  # where the page before this one ends; None at the chat's start
    newer: Cursor | None  # where the page after this one starts; None at the newest message


def messages_between(opened: Opened, conversation: str, since: int | None, until: int | None) -> Iterator[Message]:
    """The conversation's messages with since <= time < until, in time order, deleted ones merged in."""
    present = opened.reading.profile.messages(conversation, since, until)
    gone = [m for m in opened.deleted.get(conversation, ())
            if (since is None or m.time >= since) and (until is None or m.time < until)]
    return heapq.merge(present, gone, key=lambda m: m.time) if gone else present


def page_after(opened: Opened, conversation: str, cursor: Cursor | None, size: int = PAGE) -> Page:
    """The `size` messages after `cursor` (from the chat's start when None)."""
    stream = messages_between(opened, conversation, cursor.time if cursor else None, None)
    if cursor is not None and cursor.id is not None:
        stream = _after_tie(stream, cursor)
    taken = _take(stream, size + 1)
    more = len(taken) > size
    taken = taken[:size]
    newer = Cursor.of(taken[-1]) if more else None
    older = Cursor.of(taken[0]) if cursor is not None and taken else cursor
    return Page(taken, older, newer)


def page_before(opened: Opened, conversation: str, cursor: Cursor | None, size: int = PAGE) -> Page:
    """The `size` messages before `cursor` (the newest ones when None)."""
    start = _take(messages_between(opened, conversation, None, None), 1)
    if not start:
        return Page([], None, None)
    until = cursor.time + 1 if cursor is not None else None  # ties at cursor.time are sorted out by _before

    def window(since: int) -> Iterator[Message]:
        stream = messages_between(opened, conversation, since, until)
        return _before(stream, cursor) if cursor is not None else stream

    # The latest `since` whose window still holds a page and one more message: found by bisection, each
    # probe reading at most size + 1 messages from the time index, so the window read below is a page long
    # (plus messages sharing its first time) wherever the cursor is and however far the chat goes back.
    low, high = start[0].time, LATEST
    if len(_take(window(low), size + 1)) <= size:
        high = low  # fewer than a page before the cursor: the window starts at the chat's start
    while high - low > 1:
        middle = (low + high) // 2
        if len(_take(window(middle), size + 1)) > size:
            low = middle
        else:
            high = middle
    kept: deque[Message] = deque(window(low), maxlen=size + 1)
    more = len(kept) > size
    messages = list(kept)[-size:]
    older = Cursor.of(messages[0]) if more else None
    newer = Cursor.of(messages[-1]) if cursor is not None and messages else None
    return Page(messages, older, newer)


def _take(stream: Iterable[Message], n: int) -> list[Message]:
    taken = []
    iterator = iter(stream)
    for message in iterator:
        taken.append(message)
        if len(taken) == n:
            break
    close = getattr(iterator, "close", None)
    if close:
        close()  # ends the query now rather than when the generator is collected
    return taken


def _after_tie(stream: Iterator[Message], cursor: Cursor) -> Iterator[Message]:
    """Drop the messages at cursor.time up to and including the cursor's own (all of them kept if it is gone)."""
    ties: list[Message] = []
    for message in stream:
        if message.time == cursor.time:
            ties.append(message)
            continue
        yield from _past(ties, cursor)
        ties = []
        yield message
        yield from stream
        return
    yield from _past(ties, cursor)


def _past(ties: list[Message], cursor: Cursor) -> list[Message]:
    ids = [str(m.id) for m in ties]
    return ties[ids.index(cursor.id) + 1:] if cursor.id in ids else ties


def _before(stream: Iterator[Message], cursor: Cursor) -> Iterator[Message]:
    """The messages before the cursor: at cursor.time, those before its own message (all, if it is gone:
    shown on both sides rather than lost, as `_after_tie` does)."""
    for message in stream:
        if message.time < cursor.time:
            yield message
        elif message.time == cursor.time and cursor.id is not None:
            if str(message.id) == cursor.id:
                return
            yield message
        else:
            return
