"""Which listed file a message's media reference names.

Apps name attachments their own way: iMessage `~/Library/Messages/Attachments/0a/10/<GUID>/IMG_1.heic`
(or `/var/mobile/Library/SMS/Attachments/…` on the phone), WhatsApp iOS `Media/<jid>/a/b/<id>.jpg`
relative to its `Message` folder, WhatsApp Android `Media/WhatsApp Images/IMG-….jpg`. A listing holds
the same files under the folder's label (`Attachments/0a/10/<GUID>/IMG_1.heic`) or an iOS backup's
own path. What they share is the end of the path: a reference names the listed file whose last
three (else last two) parts are the reference's. A bare name (WeChat's `imgPath`, a hash without its
folder or extension) names the one listed file it is the name of, or the name without its extension
(and, for WeChat Android's voice notes, `msg_<imgPath>.amr`: wechat-dump's wechat/res.py). Where
several files answer a bare name it names none of them (it is ambiguous), but it isn't absent;
where none does, it is absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SCHEME = re.compile(r"^[A-Za-z_][A-Za-z0-9_+.-]*://")
TAILS = (3, 2)  # parts of a path's end that identify it, longest first
VOICE_PREFIX = "msg_"  # WeChat Android: voice2/<md5[:2]>/<md5[2:4]>/msg_<imgPath>.amr
AMBIGUOUS = ""  # a bare name several listed files answer


def parts(reference: str) -> list[str]:
    """The path parts of a reference: no scheme, `~`, drive, empty or `.` parts; `\\` read as `/`."""
    path = SCHEME.sub("", reference.strip()).replace("\\", "/")
    return [p for p in path.split("/") if p not in ("", ".", "~") and not (len(p) == 2 and p[1] == ":")]


def name_keys(name: str) -> set[str]:
    """The bare references a listed file of this name answers: the name, the name without its
    extension, and that without WeChat's voice prefix."""
    stem = name.split(".", 1)[0]
    keys = {name, stem, stem.removeprefix(VOICE_PREFIX)}
    keys.discard("")
    return keys


class MediaIndex:
    """Listed paths by the ends of their paths, to find the file a reference names."""

    def __init__(self, paths: Iterable[str]):
        self._by_tail: dict[str, str] = {}
        self._by_name: dict[str, str] = {}  # bare reference -> the one path it names, or AMBIGUOUS
        for path in sorted(paths):
            split = path.split("/")
            for n in TAILS:
                if len(split) >= n:
                    self._by_tail.setdefault("/".join(split[-n:]), path)
            for key in name_keys(split[-1]):
                self._by_name[key] = path if self._by_name.get(key, path) == path else AMBIGUOUS

    def find(self, reference: str) -> str | None:
        """The listed path `reference` names, or None."""
        split = parts(reference)
        for n in TAILS:
            if len(split) >= n and (found := self._by_tail.get("/".join(split[-n:]))):
                return found
        return (self._by_name.get(split[-1]) or None) if len(split) == 1 else None

class Absent:
    """The references naming no listed file, found as the listing's paths stream by (in any order)
    without holding them: a reference of two parts or more names a file whose last two parts are
    its own (its last three too, if it has them: the same paths, see MediaIndex.find); a bare name
    one of whose names it is (see `name_keys`)."""

    def __init__(self, references: Iterable[str]):
        self._open: dict[str, list[str]] = {}  # a path's last two parts, or a bare name -> references
        self._bare: dict[str, list[str]] = {}
        for reference in references:
            split = parts(reference)
            if len(split) >= 2:
                self._open.setdefault("/".join(split[-2:]), []).append(reference)
            elif split:
                self._bare.setdefault(split[0], []).append(reference)

    def seen(self, path: str) -> None:
        """A listed path: the references it answers are not absent."""
        split = path.split("/")
        if self._open and len(split) >= 2:
            self._open.pop("/".join(split[-2:]), None)
        if self._bare:
            for key in name_keys(split[-1]):
                self._bare.pop(key, None)

    def references(self) -> list[str]:
        """The references no path seen so far answers, sorted."""
        return sorted({r for found in (*self._open.values(), *self._bare.values()) for r in found})
