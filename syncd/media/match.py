"""Which listed file a message's media reference names.

Apps name attachments their own way: iMessage `~/Library/Messages/Attachments/0a/10/<GUID>/IMG_1.heic`
(or `/var/mobile/Library/SMS/Attachments/…` on the phone), WhatsApp iOS `Media/<jid>/a/b/<id>.jpg`
relative to its `Message` folder, WhatsApp Android `Media/WhatsApp Images/IMG-….jpg`. A listing holds
the same files under the folder's label (`Attachments/0a/10/<GUID>/IMG_1.heic`) or an iOS backup's
own path. What they share is the end of the path: a reference names the listed file whose last
three (else last two) parts are the reference's. A bare name (WeChat's `imgPath`, a hash without its
folder or extension) is matched by name alone and never judged absent: it says too little.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SCHEME = re.compile(r"^[A-Za-z_][A-Za-z0-9_+.-]*://")
TAILS = (3, 2)  # parts of a path's end that identify it, longest first


def parts(reference: str) -> list[str]:
    """The path parts of a reference: no scheme, `~`, drive, empty or `.` parts; `\\` read as `/`."""
    path = SCHEME.sub("", reference.strip()).replace("\\", "/")
    return [p for p in path.split("/") if p not in ("", ".", "~") and not (len(p) == 2 and p[1] == ":")]


class MediaIndex:
    """Listed paths by the ends of their paths, to find the file a reference names."""

    def __init__(self, paths: Iterable[str]):
        self._by_tail: dict[str, str] = {}
        self._by_name: dict[str, str] = {}
        for path in sorted(paths):
            split = path.split("/")
            for n in TAILS:
                if len(split) >= n:
                    self._by_tail.setdefault("/".join(split[-n:]), path)
            self._by_name.setdefault(split[-1], path)

    def find(self, reference: str) -> str | None:
        """The listed path `reference` names, or None."""
        split = parts(reference)
        for n in TAILS:
            if len(split) >= n and (found := self._by_tail.get("/".join(split[-n:]))):
                return found
        return self._by_name.get(split[-1]) if len(split) == 1 else None

    def absent(self, references: Iterable[str]) -> list[str]:
        """The references that name a path (two parts or more) no listed file ends with, sorted."""
        return sorted({r for r in references if len(parts(r)) >= 2 and self.find(r) is None})


class Absent:
    """The references naming no listed file, found as the listing's paths stream by (in any order)
    without holding them: a reference of two parts or more names a file whose last two parts are
    its own (its last three too, if it has them: the same paths, see MediaIndex.find)."""

    def __init__(self, references: Iterable[str]):
        self._open: dict[str, list[str]] = {}
        for reference in references:
            split = parts(reference)
            if len(split) >= 2:
                self._open.setdefault("/".join(split[-2:]), []).append(reference)

    def seen(self, path: str) -> None:
        """A listed path: the references it answers are not absent."""
        if self._open:
            self._open.pop("/".join(path.split("/")[-2:]), None)

    def references(self) -> list[str]:
        """The references no path seen so far answers, sorted."""
        return sorted({r for found in self._open.values() for r in found})
