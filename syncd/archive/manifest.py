"""The manifest: the list of a source's versions, written last as the commit point.

Each version names its objects by content hash and carries a `hash` that covers
its number, time, row counts, the digest of its content's plain (zstd) bytes and
its parent's hash, so every version proves its predecessor and a changed or
reordered entry is detected. The chain covers the plain digest, not the stored
object, so it is the same on every target: an encrypted target stores other
bytes under other names, but the same versions with the same hashes.
A version's *content* is its delta (changeset from the version before) or, for a
version without one (the first), its base (the whole mirror). Bases added later
to shorten restores are checked by their own content hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from . import codec
from ..errors import ArchiveError, CorruptObject

# /2: the chain covers `plain_sha256` instead of the whole object ref (so it is the
# same on plain and encrypted targets). /1 archives came only from development builds.
FORMAT = "syncd-archive/2"
# A forged manifest of tiny values (`[{},{},…]`) costs about 30× its size to parse (3.4 GB for
# the 128 MiB a target may serve); syncd's own spend about 40 bytes of JSON per value, so a
# denser one is refused unparsed, which keeps the worst case near 5× (670 MB at the cap).
MIN_BYTES_PER_VALUE = 24
DENSE_FLOOR = 1 << 20  # below this, parsing costs little whatever the shape (an empty manifest is dense)
# Every field is checked as it is decoded: a manifest comes from whoever controls the target,
# and its object names become paths and URLs.
OBJECT_NAME = re.compile(r"^objects/\d{10}-(base|delta)-[0-9a-f]{32}(\.zst|\.zst\.age)$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
ROW_COUNTS = ("added", "changed", "deleted")
# What the source kind recorded of where the database came from (its kind, app and cipher
# settings, never a key): a few short strings, for `restore --key-file` and the app profiles.
ORIGIN_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
ORIGIN_MAX_ENTRIES, ORIGIN_MAX_VALUE = 32, 256
# Which media listing (syncd.media: path, size, time and hash of every file) was current at each
# version: [version, listing sha256] pairs, one where the listing changed, oldest first. Outside
# the chain, like `origin`: media seen between two database versions updates the head's entry.


class Invalid(ValueError):
    """A manifest field that syncd never writes."""


def _field(d: object, key: str, kind: type, check=lambda value: True, *, where: str):
    """`d[key]`, if it is a `kind` (a JSON int is never a bool) that passes `check`."""
    if not isinstance(d, dict) or key not in d:
        raise Invalid(f"{where} has no {key!r}")
    value = d[key]
    if type(value) is not kind or not check(value):
        raise Invalid(f"{where} has an unusable {key!r}: {json.dumps(value)[:80]}")
    return value


def _is_sha256(value: str) -> bool:
    return bool(SHA256.match(value))


def _is_aware_time(value: str) -> bool:
    """ISO 8601 with an offset, as syncd writes it."""
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


@dataclass(frozen=True)
class ObjectRef:
    """An immutable stored object: its name, stored size, sha256 of stored bytes, codec.

    `plain_sha256` is the sha256 of the zstd bytes before any encryption: equal to
    `sha256` for a plain object, and what the hash chain covers.
    """

    name: str
    size: int
    sha256: str
    codec: str
    plain_sha256: str = ""

    def __post_init__(self):
        if not self.plain_sha256:
            object.__setattr__(self, "plain_sha256", self.sha256)

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "codec": self.codec,
                "plain_sha256": self.plain_sha256}

    @classmethod
    def from_dict(cls, d: dict, where: str = "an object") -> ObjectRef:
        name = _field(d, "name", str, OBJECT_NAME.match, where=where)
        where = f"{where} ({name})"
        return cls(name, _field(d, "size", int, lambda n: n >= 0, where=where),
                   _field(d, "sha256", str, _is_sha256, where=where),
                   _field(d, "codec", str, lambda c: c in codec.SUFFIX and name.endswith(codec.SUFFIX[c]), where=where),
                   _field(d, "plain_sha256", str, _is_sha256, where=where) if "plain_sha256" in d else "")


@dataclass(frozen=True)
class Version:
    """One archived version: its rows' counts, its stored content, and its place in the hash chain."""

    number: int
    time: str  # UTC, ISO 8601, when the change was archived
    parent: str | None
    rows: dict[str, int]
    delta: ObjectRef | None = None
    base: ObjectRef | None = None
    hash: str = ""

    @property
    def content(self) -> ObjectRef:
        content = self.delta or self.base
        assert content is not None
        return content

    @property
    def stored_bytes(self) -> int:
        """What archiving this version stored: its content, plus a base made beside a delta."""
        return sum(ref.size for ref in (self.delta, self.base) if ref)

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.time)

    def chained_hash(self) -> str:
        covered = {
            "version": self.number,
            "time": self.time,
            "parent": self.parent,
            "rows": self.rows,
            "content": self.content.plain_sha256,
        }
        return hashlib.sha256(_canonical(covered)).hexdigest()

    def to_dict(self) -> dict:
        d = {"version": self.number, "time": self.time, "parent": self.parent, "hash": self.hash, "rows": self.rows}
        if self.delta:
            d["delta"] = self.delta.to_dict()
        if self.base:
            d["base"] = self.base.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict, position: int = 1) -> Version:
        """A version as decoded from the `position`th entry of a manifest, every field checked."""
        number = _field(d, "version", int, lambda n: n >= 1, where=f"version {position}")
        where = f"version {number}"
        rows = _field(d, "rows", dict, lambda r: all(k in r for k in ROW_COUNTS) and all(
            isinstance(k, str) and type(n) is int and n >= 0 for k, n in r.items()), where=where)
        parent = None if d.get("parent") is None else _field(d, "parent", str, _is_sha256, where=where)
        ref = lambda key: ObjectRef.from_dict(d[key], f"{where}'s {key}") if d.get(key) else None  # noqa: E731
        return cls(number, _field(d, "time", str, _is_aware_time, where=where), parent, rows,
                   ref("delta"), ref("base"), _field(d, "hash", str, _is_sha256, where=where))


@dataclass(frozen=True)
class Manifest:
    """A source's history on one archive: every version, oldest first, and what rides beside the chain."""

    source: str
    versions: tuple[Version, ...] = field(default_factory=tuple)
    origin: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs; see ORIGIN_KEY
    media: tuple[tuple[int, str], ...] = ()  # (version, listing) where the media listing changed

    @property
    def head(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    def append(self, rows: dict[str, int], *, delta: ObjectRef | None = None, base: ObjectRef | None = None,
               time: datetime | None = None) -> Manifest:
        """A manifest with one more version, chained to the current head."""
        head = self.head
        stamp = (time or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="milliseconds")
        version = Version(head.number + 1 if head else 1, stamp, head.hash if head else None, rows, delta, base)
        version = replace(version, hash=version.chained_hash())
        return replace(self, versions=self.versions + (version,))

    def with_base(self, number: int, base: ObjectRef) -> Manifest:
        """Record a base (the whole mirror) for an existing version."""
        versions = tuple(replace(v, base=base) if v.number == number else v for v in self.versions)
        return replace(self, versions=versions)

    def version(self, number: int | None = None) -> Version:
        """The given version, or the latest."""
        if not self.versions:
            raise ArchiveError(f"source {self.source!r} has no versions yet")
        if number is None:
            return self.versions[-1]
        if not 1 <= number <= len(self.versions):
            raise ArchiveError(
                f"version {number} of {self.source!r} does not exist",
                hint=f"versions run from 1 to {len(self.versions)}; see `syncd log`",
            )
        return self.versions[number - 1]

    def at(self, moment: datetime) -> Version:
        """The latest version archived at or before `moment`."""
        earlier = [v for v in self.versions if v.when <= moment]
        if not earlier:
            first = self.version(1).time if self.versions else "none"
            raise ArchiveError(f"no version of {self.source!r} at or before {moment.isoformat()}",
                               hint=f"the first version is from {first}")
        return earlier[-1]

    def restore_plan(self, number: int) -> list[Version]:
        """The versions whose objects rebuild `number`: the nearest with a base, then deltas."""
        bases = [v.number for v in self.versions[:number] if v.base]
        if not bases:
            raise CorruptObject(f"the manifest of {self.source!r} has no base at or before version {number}",
                                hint="run `syncd verify` on the target")
        return list(self.versions[bases[-1] - 1: number])

    def objects(self) -> list[ObjectRef]:
        return [ref for v in self.versions for ref in (v.delta, v.base) if ref]

    def chain_problems(self) -> list[str]:
        """What breaks the numbering or the hash chain; empty when the chain holds."""
        problems, parent = [], None
        for i, v in enumerate(self.versions, start=1):
            if v.number != i:
                problems.append(f"version {v.number} is listed where version {i} belongs")
            if v.parent != parent:
                problems.append(f"version {v.number} does not follow from version {i - 1}'s hash")
            if v.delta is None and v.base is None:
                problems.append(f"version {v.number} has no objects")
            elif v.hash != v.chained_hash():
                problems.append(f"version {v.number}'s entry was altered (its hash doesn't match)")
            parent = v.hash
        if self.versions and self.versions[0].base is None:
            problems.append("version 1 has no base")
        return problems

    def extends(self, older: Manifest) -> bool:
        """True if `older`'s versions are the first versions of this one."""
        mine = self.versions[: len(older.versions)]
        return len(mine) == len(older.versions) and all(a.hash == b.hash for a, b in zip(mine, older.versions))

    def media_at(self, number: int | None = None) -> str | None:
        """The media listing current at version `number` (the head by default), if media was archived."""
        number = number if number is not None else (self.head.number if self.head else 0)
        current = None
        for version, listing in self.media:
            if version > number:
                break
            current = listing
        return current

    def with_media(self, listing: str) -> Manifest:
        """The head's media listing set to `listing` (an entry of its own unless it is already current)."""
        if self.media_at() == listing or not self.head:
            return self
        kept = tuple(entry for entry in self.media if entry[0] != self.head.number)
        return replace(self, media=kept + ((self.head.number, listing),))

    def with_origin(self, origin: Mapping[str, str]) -> Manifest:
        return replace(self, origin=_checked_origin(dict(origin)))

    def to_bytes(self) -> bytes:
        data = {"format": FORMAT, "source": self.source, "versions": [v.to_dict() for v in self.versions]}
        if self.origin:  # only where a source kind recorded one: older manifests keep their bytes
            data["origin"] = dict(self.origin)
        if self.media:  # likewise: only where media was archived
            data["media"] = [list(entry) for entry in self.media]
        return json.dumps(data, ensure_ascii=False, indent=1).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, name: str) -> Manifest:
        if len(raw) > DENSE_FLOOR and _values(raw) * MIN_BYTES_PER_VALUE > len(raw):
            raise CorruptObject(f"{name} is not a manifest syncd wrote: too many JSON values for its size",
                                hint="run `syncd verify` on the target")
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise Invalid("it is not a JSON object")
            if data.get("format") != FORMAT:
                raise CorruptObject(f"{name} has format {str(data.get('format'))[:40]!r}, expected {FORMAT!r}",
                                    hint="another version of syncd wrote it")
            versions = _field(data, "versions", list, where="it")
            origin = _checked_origin(_field(data, "origin", dict, where="it") if "origin" in data else {})
            parsed = tuple(Version.from_dict(v, i) for i, v in enumerate(versions, start=1))
            media = _checked_media(_field(data, "media", list, where="it") if "media" in data else [], len(parsed))
            return cls(_field(data, "source", str, where="it"), parsed, origin, media)
        except Invalid as e:
            raise CorruptObject(f"{name} is not a manifest syncd wrote: {e}",
                                hint="run `syncd verify` on the target") from None
        except (ValueError, RecursionError) as e:
            raise CorruptObject(f"{name} is not a readable manifest ({type(e).__name__}: {e})") from None


def _checked_origin(origin: dict) -> tuple[tuple[str, str], ...]:
    if len(origin) > ORIGIN_MAX_ENTRIES:
        raise Invalid(f"its origin has {len(origin)} entries")
    for key, value in origin.items():
        if not ORIGIN_KEY.match(key) or type(value) is not str or len(value) > ORIGIN_MAX_VALUE:
            raise Invalid(f"its origin has an unusable entry: {json.dumps({key: value})[:80]}")
    return tuple(sorted(origin.items()))


def _checked_media(entries: list, versions: int) -> tuple[tuple[int, str], ...]:
    checked, last = [], 0
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int and last < entry[0] <= versions
                and type(entry[1]) is str and _is_sha256(entry[1])):
            raise Invalid(f"its media has an unusable entry: {json.dumps(entry)[:80]}")
        last = entry[0]
        checked.append((entry[0], entry[1]))
    return tuple(checked)


def _values(raw: bytes) -> int:
    """At least as many as the JSON values in `raw` (each is the first in its container, or follows a comma)."""
    return raw.count(b"{") + raw.count(b"[") + raw.count(b",") + 1


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
