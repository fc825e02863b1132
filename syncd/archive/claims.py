"""What a target records about itself, readable without any key, under `_syncd/`:

    _syncd/target.json            {"format": "syncd-target/1", "encrypted": true, "recipients": ["<fingerprint>", …]}
    _syncd/writers/<folder>.json  {"format": "syncd-writer/1", "writer": "<a state dir's random id>"}

The first says whether the target's archives are encrypted, and to which
recipients (sha256 fingerprints, never the keys), so a sync that forgot
`--encrypt-to`, or adds it to a target of plain archives, is refused before it
writes anything. The second says which state dir writes a source's folder there,
so a second machine (or a second state dir) is refused instead of replacing that
history. Source names can't start with `_`, so `_syncd` never names a source.
Both are written before the first object of a delivery; a target that has
neither (made by an older syncd) is judged by what it holds, then marked.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from .plain import MANIFEST_GAP_RETRIES, MANIFEST_GAP_WAIT
from ..backend import Backend
from ..errors import AlreadyExists, ArchiveError, CorruptObject, NotFound, TooLarge, UsageError

if TYPE_CHECKING:
    from pyrage import x25519

RECORDS = "_syncd/"
MARK = RECORDS + "target.json"
WRITERS = RECORDS + "writers/"
MARK_FORMAT = "syncd-target/1"
WRITER_FORMAT = "syncd-writer/1"
RECORD_MAX_BYTES = 64 << 10
FINGERPRINT_HEX = 16
# On a store without exclusive create, a claim is written, then read back after this long:
# a racing writer's claim that lands meanwhile replaces it, and the earlier writer backs off.
CLAIM_SETTLE = 0.5
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][^/]*/(manifest\.json|objects/[^/]+\.zst)$")
SEALED_NAME = re.compile(r"^[0-9a-f]{32}/(manifest\.age|objects/[^/]+\.zst\.age)$")
HEX = re.compile(r"^[0-9a-f]+$")


def fingerprint(recipient: x25519.Recipient) -> str:
    """Names a recipient without giving it away: the start of the sha256 of its `age1…` text."""
    return hashlib.sha256(str(recipient).encode()).hexdigest()[:FINGERPRINT_HEX]


@dataclass(frozen=True)
class TargetMark:
    encrypted: bool
    recipients: tuple[str, ...] = ()  # fingerprints of every recipient a source was encrypted to here

    def describe(self) -> str:
        if not self.encrypted:
            return "in the clear"
        return f"encrypted (to recipients {', '.join(self.recipients)})" if self.recipients else "encrypted"

    def to_bytes(self) -> bytes:
        return json.dumps({"format": MARK_FORMAT, "encrypted": self.encrypted,
                           "recipients": list(self.recipients)}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> TargetMark:
        data = _record(raw, MARK_FORMAT, where)
        encrypted, recipients = data.get("encrypted"), data.get("recipients", [])
        if not isinstance(encrypted, bool) or not isinstance(recipients, list) \
                or not all(isinstance(r, str) and HEX.match(r) for r in recipients):
            raise damaged(where)
        return cls(encrypted, tuple(recipients))


def damaged(where: str) -> CorruptObject:
    return CorruptObject(f"{where} is damaged", hint="the next sync writes it again (from what the target holds)")


def _landed(backend: Backend, name: str) -> CorruptObject:
    return CorruptObject(f"{backend.location}: {name} did not land whole",
                         hint="the server or a proxy in between damages uploads; the next pass tries again")


def _record(raw: bytes, expected: str, where: str) -> dict:
    try:
        data = json.loads(raw)
    except ValueError:
        raise damaged(where) from None
    if not isinstance(data, dict) or data.get("format") != expected:
        raise damaged(where)
    return data


def _read(backend: Backend, name: str) -> bytes | None:
    """A small record, or None if there is none; refused if it is larger than any syncd writes."""
    try:
        with backend.open(name, limit=RECORD_MAX_BYTES) as f:
            raw = f.read(RECORD_MAX_BYTES + 1)
    except NotFound:
        return None
    except TooLarge:
        raise damaged(f"{backend.location}: {name}") from None
    if len(raw) > RECORD_MAX_BYTES:
        raise damaged(f"{backend.location}: {name}")
    return raw


def read_mark(backend: Backend) -> TargetMark | None:
    raw = _read(backend, MARK)
    return None if raw is None else TargetMark.from_bytes(raw, f"{backend.location}: {MARK}")


def held_mark(backend: Backend) -> TargetMark | None:
    """What an unmarked target holds: encrypted archives, plain ones, or none yet (None)."""
    names = [info.name for info in backend.list("")]
    plain, sealed = any(map(PLAIN_NAME.match, names)), any(map(SEALED_NAME.match, names))
    if plain and sealed:
        raise UsageError(f"{backend.location} holds archives in the clear beside encrypted ones",
                         hint="move the plain archives to a target of their own: encrypting the others hides "
                              "nothing while those are readable")
    return TargetMark(sealed) if plain or sealed else None


def mismatch(location: str, held: TargetMark) -> UsageError:
    if held.encrypted:
        return UsageError(f"{location} holds encrypted archives: this sync would write there in the clear",
                          hint="add --encrypt-to with the target's recipients "
                               f"({held.describe().removeprefix('encrypted ').strip('()') or 'see `syncd verify`'}), "
                               "or sync to another target")
    return UsageError(f"{location} holds archives in the clear: encrypting to it would leave those readable",
                      hint="sync encrypted to another (empty) target, or move the plain archives away first")


def writer_of(backend: Backend, folder: str) -> str | None:
    """The writer that claimed `folder` on `backend`, if any."""
    name = f"{WRITERS}{folder}.json"
    raw = _read(backend, name)
    if raw is None:
        return None
    writer = _record(raw, WRITER_FORMAT, f"{backend.location}: {name}").get("writer")
    if not isinstance(writer, str) or not HEX.match(writer):
        raise damaged(f"{backend.location}: {name}")
    return writer


def conflict(location: str, source: str, folder: str, other: str, mine: str) -> ArchiveError:
    return ArchiveError(f"{location}: {source!r} there is written by another syncd state dir (writer {other[:8]}…; "
                        f"this state dir is {mine[:8]}…): two writers would replace each other's history",
                        hint=f"sync this source under another --name, or to another target; if the other writer "
                             f"is gone for good, delete {WRITERS}{folder}.json on the target")


def admit(backend: Backend, folder: str, source: str, writer: str,
          recipients: Sequence[x25519.Recipient] = ()) -> Callable[[], None]:
    """Refuse a delivery this target must not take; return what records it there, to call before its first write.

    UsageError: the target is encrypted and this delivery isn't, or the other way round.
    ArchiveError: another state dir writes `folder` here.
    """
    encrypted, ours = bool(recipients), {fingerprint(r) for r in recipients}
    mark = _unless_damaged(read_mark, backend)
    held = mark or held_mark(backend)
    if held is not None and held.encrypted != encrypted:
        raise mismatch(backend.location, held)
    owner = _unless_damaged(writer_of, backend, folder)
    if owner not in (None, writer):
        raise conflict(backend.location, source, folder, owner, writer)

    def record() -> None:
        if mark is None or not ours <= set(mark.recipients):
            known = set(mark.recipients) if mark else set()
            new = TargetMark(encrypted, tuple(sorted(known | ours)))
            backend.write(MARK, io.BytesIO(new.to_bytes()))
            # A racing writer may have replaced it meanwhile: fine if it says the same of the target.
            landed = _read_back(read_mark, backend)
            if landed is None or landed.encrypted != encrypted:
                raise _landed(backend, MARK)
        if owner is None:
            claim(backend, folder, source, writer)

    return record


def _unless_damaged(read: Callable, *args):
    """A record, or None if there is none or it is damaged: a damaged one is written again."""
    try:
        return read(*args)
    except CorruptObject:
        return None


def _read_back(read: Callable, *args):
    """A record just written, waiting out the moment a store without an atomic replace (WebDAV's
    MOVE) shows nothing while a racing writer replaces it."""
    for attempt in range(MANIFEST_GAP_RETRIES + 1):
        found = _unless_damaged(read, *args)
        if found is not None or attempt == MANIFEST_GAP_RETRIES:
            return found
        time.sleep(MANIFEST_GAP_WAIT * 2 ** attempt)


def claim(backend: Backend, folder: str, source: str, writer: str) -> None:
    """Make `writer` the one writer of `folder` here, or raise the conflict with the writer that got there first."""
    name = f"{WRITERS}{folder}.json"
    raw = json.dumps({"format": WRITER_FORMAT, "writer": writer}).encode()
    create = getattr(backend, "create", None)
    try:
        owner, damaged_claim = writer_of(backend, folder), False
    except CorruptObject:
        owner, damaged_claim = None, True
    if owner is None and create is not None and not damaged_claim:
        try:
            create(name, io.BytesIO(raw))
        except AlreadyExists:
            pass  # someone's claim: ours if a retry re-sent it, read below
    elif owner is None:
        backend.write(name, io.BytesIO(raw))
        time.sleep(CLAIM_SETTLE)
    owner = _read_back(writer_of, backend, folder)
    if owner is None:
        raise _landed(backend, name)
    if owner != writer:
        raise conflict(backend.location, source, folder, owner, writer)


def mode_problem(mark: TargetMark | None, encrypted: bool, what: str) -> str | None:
    """What's wrong with an archive (`what`) that is (or isn't) encrypted on a target marked `mark`."""
    if mark is None or mark.encrypted == encrypted:
        return None
    if encrypted:
        return f"{what} is encrypted on a target marked {mark.describe()}"
    return f"{what} is held in the clear on a target marked {mark.describe()}"


def holds_archives(backend: Backend) -> bool:
    """Whether anything of any archive is left on `backend`: a target that lost one source's archive
    still holds the others (or that source's objects); a wiped or unmounted one holds nothing."""
    return any(PLAIN_NAME.match(info.name) or SEALED_NAME.match(info.name) for info in backend.list(""))


def mode_warning(archive) -> str | None:
    """For `log`: an archive read in the clear from an encrypted target, or the other way round."""
    try:
        mark = read_mark(archive.backend)
    except CorruptObject as e:
        return str(e)
    problem = mode_problem(mark, archive.manifest_name.endswith(".age"), f"{archive.location}: {archive.source}")
    return problem and f"{problem}: run `syncd verify --from {archive.location}`"
