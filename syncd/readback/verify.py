"""Checking a target: every manifest's chain, and every object against its recorded hash.

An encrypted archive is checked as deeply as the caller can: without an
identity only from outside (every object's bytes against the hash in its name,
nothing unexpected in its folder); with one, like a plain archive (chain,
every object decrypted and checked against `plain_sha256`). Given the local
state dir, a target is also compared with what this machine delivered there,
which catches a rollback to an older manifest and, when encrypted, a deleted object.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from pyrage import x25519

from ..archive import crypto
from ..archive.plain import CHUNK, Archive, list_sources
from ..backend import Backend
from ..archive.claims import held_mark, mode_problem, read_mark
from ..errors import NotFound, SyncdError, TooLarge
from ..archive.manifest import Manifest
from ..archive.sealed import MANIFEST_AGE, OBJECT_NAME, SealedArchive, recorded_manifest, sealed_folders
from ..archive.state import WRITTEN, SourceState, known_sources


# An encrypted archive's media (syncd.media.area): its sealed key, and objects under keyed names.
SEALED_MEDIA = re.compile(r"^media/(key\.age|(objects|index|listings)/[0-9a-f]{64})$")


@dataclass
class SourceCheck:
    source: str  # the source's name, or its folder id when that can't be read
    versions: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)  # leftovers of interrupted uploads: harmless
    encrypted: bool = False
    deep: bool = True  # False: an encrypted archive checked without its identity
    media_files: int = 0  # distinct media files checked byte for byte

    def to_dict(self) -> dict:
        return dict(self.__dict__, ok=not self.problems)


def verify(backend: Backend, sources: list[str] | None = None, *, identities: Sequence[x25519.Identity] = (),
           state_dir: Path | None = None) -> list[SourceCheck]:
    """Check each source's archive on `backend` (all of them by default), plain and encrypted."""
    wanted = lambda name: not sources or name in sources  # noqa: E731
    checks = [_check_source(Archive(backend, name), state_dir) for name in list_sources(backend) if wanted(name)]
    folders = sealed_folders(backend)
    for folder in folders:
        check = _check_sealed(SealedArchive(backend, folder, identities=identities), state_dir)
        if wanted(check.source):
            checks.append(check)
    if state_dir is not None:
        checks += _lost(backend, state_dir, checks, folders, wanted)
    found = {c.source for c in checks}
    checks += [SourceCheck(name, problems=[f"{name}/manifest.json is missing"]) for name in sources or []
               if name not in found]
    _check_mode(backend, checks)
    return checks


def _lost(backend: Backend, state_dir: Path, checks: list[SourceCheck], folders: list[str],
          wanted: Callable[[str], bool]) -> list[SourceCheck]:
    """Every source this state dir delivered to `backend` whose archive is no longer there."""
    plain = {c.source for c in checks if not c.encrypted}
    lost = []
    for name in filter(wanted, known_sources(state_dir)):
        state = SourceState(state_dir, name)
        for key in state.delivered_keys():
            location, _, folder = key.partition("#")
            if location != backend.location or (folder in folders if folder else name in plain):
                continue
            delivered = f"version {state.cursor(key)['version']} of {name!r} was delivered there"
            missing = f"{folder}/{MANIFEST_AGE}" if folder else f"{name}/manifest.json"
            lost.append(SourceCheck(name, encrypted=bool(folder), problems=[f"{missing} is missing, but {delivered}"]))
    return lost


def _check_mode(backend: Backend, checks: list[SourceCheck]) -> None:
    """Plain archives on an encrypted target, or the other way round (see syncd.archive.claims)."""
    try:
        mark = read_mark(backend) or held_mark(backend)
    except SyncdError as e:
        for check in checks:
            check.problems.append(str(e))
        return
    for check in checks:
        if problem := mode_problem(mark, check.encrypted, check.source):
            check.problems.append(problem)


def _check_source(archive: Archive, state_dir: Path | None) -> SourceCheck:
    check = SourceCheck(archive.source)
    try:
        manifest = archive.manifest()
    except SyncdError as e:
        check.problems.append(str(e))
        return check
    if manifest is None:
        check.problems.append(f"{archive.source}/manifest.json is missing")
        return check
    if state_dir is not None:
        cursor = SourceState(state_dir, archive.source).cursor(archive.cursor_key)
        if cursor:
            check.problems += _rollback(manifest, cursor["version"], cursor["hash"])
    _check_manifest(archive, manifest, check)
    return check


def _check_manifest(archive: Archive, manifest: Manifest, check: SourceCheck) -> None:
    """The chain, and every referenced object fetched, checked and decoded."""
    check.versions = len(manifest.versions)
    check.problems += manifest.chain_problems()
    stored = archive.stored_objects()
    referenced = manifest.objects()
    check.objects = len(referenced)
    with tempfile.TemporaryDirectory(prefix="syncd-verify-") as tmp:
        for ref in referenced:
            if ref.name not in stored:
                check.problems.append(f"{archive.folder}/{ref.name} is missing")
                continue
            try:
                archive.fetch(ref, Path(tmp, "object"))
            except SyncdError as e:
                check.problems.append(str(e))
    check.unreferenced = sorted(set(stored) - {ref.name for ref in referenced})
    if manifest.media:
        _check_media(archive, manifest, check)


def _check_media(archive: Archive, manifest: Manifest, check: SourceCheck) -> None:
    """Every media listing the manifest names, through the store's index to every byte."""
    from ..media.check import check_media
    from .restore import reading_area

    try:
        area = reading_area(archive)
    except SyncdError as e:
        check.problems.append(str(e))
        return
    check.media_files, problems = check_media(area, [listing for _, listing in manifest.media])
    check.problems += problems


def _rollback(manifest: Manifest, delivered: int, head_hash: str) -> list[str]:
    """The target holds less than, or other than, the version this machine delivered there."""
    held = manifest.head.number if manifest.head else 0
    if held < delivered:
        return [f"rolled back: the target holds version {held}, but version {delivered} was delivered there"]
    if manifest.versions[delivered - 1].hash != head_hash:
        return [f"replaced: the target's version {delivered} is not the one delivered there"]
    return []


def _check_sealed(archive: SealedArchive, state_dir: Path | None) -> SourceCheck:
    check = SourceCheck(archive.folder, encrypted=True, deep=bool(archive.identities))
    prefix = f"{archive.folder}/"
    for info in archive.backend.list(prefix):
        name = info.name[len(prefix):]
        if name != MANIFEST_AGE and not OBJECT_NAME.match(name) and not SEALED_MEDIA.match(name):
            check.problems.append(f"{info.name} does not belong in an encrypted archive")
    raw = archive.manifest_bytes()
    if raw is None:
        check.problems.append(f"{prefix}{MANIFEST_AGE} is missing")
        return check
    written = _delivered(archive, state_dir, raw, check) if state_dir is not None else None
    if not archive.identities:
        _check_from_outside(archive, written, check)
        return check
    try:
        manifest = archive.parse_manifest(raw)  # the bytes checked above, not a second download
    except SyncdError as e:
        check.problems.append(str(e))
        return check
    check.source = manifest.source
    if written is not None:
        check.problems += _rollback(manifest, len(written.versions), written.head.hash)
    _check_manifest(archive, manifest, check)
    return check


def _delivered(archive: SealedArchive, state_dir: Path, raw: bytes, check: SourceCheck) -> Manifest | None:
    """What this state dir last wrote to this archive, if it did; notes a manifest it didn't write."""
    for name in known_sources(state_dir):
        records = SourceState(state_dir, name).sealed_records(archive.cursor_key)
        if WRITTEN not in records:
            continue
        check.source = name
        digest = (crypto.sha256(raw), len(raw))
        matching = [r for r in records.values() if (r["sha256"], r["size"]) == digest]
        if not matching:
            check.problems.append(f"{archive.folder}/{MANIFEST_AGE} is not the manifest this machine wrote there "
                                  "last (rolled back or replaced)")
        return recorded_manifest((matching or [records[WRITTEN]])[0], f"{state_dir} ({archive.folder})")
    return None


def _check_from_outside(archive: SealedArchive, written: Manifest | None, check: SourceCheck) -> None:
    """Without the identity: every object's bytes against its name; with the state, nothing missing."""
    stored = archive.stored_objects()
    check.objects = len(stored)
    for name in stored:
        match = OBJECT_NAME.match(name)
        if match and not _sha256(archive, name, stored[name]).startswith(match.group(3)):
            check.problems.append(f"{archive.folder}/{name} does not match the hash in its name "
                                  "(modified, or swapped with another object)")
    if written is not None:
        check.versions = len(written.versions)
        for ref in written.objects():
            if ref.name not in stored:
                check.problems.append(f"{archive.folder}/{ref.name} is missing")


def _sha256(archive: Archive, name: str, size: int) -> str:
    """The sha256 of an object listed with `size` bytes; empty if it is gone or longer now."""
    digest = hashlib.sha256()
    try:
        with archive.backend.open(f"{archive.folder}/{name}", limit=size) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except (NotFound, TooLarge):
        return ""
    return digest.hexdigest()
