"""An encrypted archive on a target: nothing in it is readable without an identity.

Layout (see docs/format.md, "Encrypted targets"):

    <folder-id>/manifest.age                                the manifest, age-encrypted; holds the source name
    <folder-id>/objects/<version>-<kind>-<sha256>.zst.age   each local object's zstd bytes, age-encrypted

`folder-id` is derived from the source name and the recipients (syncd.archive.crypto),
so it names neither. The local archive stays plain; objects are encrypted per
target as they are delivered, so the same version has other bytes, names and
sizes on each target, and the same chain hashes (they cover `plain_sha256`).
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Sequence

from pyrage import x25519

from . import codec, crypto
from .plain import OBJECTS, Archive, AreaT, MediaAreas, Sent, choose_source
from ..backend import Backend
from ..errors import ArchiveError, CorruptObject, KeyProblem, PermanentError
from .manifest import Manifest, ObjectRef
from .state import WRITING, WRITTEN, SourceState

MANIFEST_AGE = "manifest.age"
OBJECT_NAME = re.compile(r"^objects/(\d{10})-(base|delta)-([0-9a-f]{32})\.zst\.age$")
FOLDER_NAME = re.compile(rf"^[0-9a-f]{{{crypto.FOLDER_ID_HEX}}}$")


class SealedArchive(Archive):
    """One source's encrypted archive: writable with recipients, readable with identities."""

    manifest_name = MANIFEST_AGE
    described = "encrypted archive"

    def __init__(self, backend: Backend, folder: str, *, source: str | None = None,
                 recipients: Sequence[x25519.Recipient] = (), identities: Sequence[x25519.Identity] = ()):
        self.backend, self.folder, self.source = backend, folder, source
        self.recipients, self.identities = list(recipients), list(identities)
        self._opened: Manifest | None = None

    @classmethod
    def for_source(cls, backend: Backend, source: str, recipients: Sequence[x25519.Recipient]) -> SealedArchive:
        return cls(backend, crypto.folder_id(source, recipients), source=source, recipients=recipients)

    @property
    def cursor_key(self) -> str:
        # The folder too: the same target may also hold this source in the clear,
        # or encrypted to other recipients, each with its own cursor.
        return f"{self.location}#{self.folder}"

    @property
    def manifest_where(self) -> str:
        return f"{self.location}: {self._key(MANIFEST_AGE)}"

    def manifest(self) -> Manifest | None:
        """The decrypted manifest (read once), or None if there is none; needs an identity."""
        if self._opened is None:
            self._opened = super().manifest()
        return self._opened

    def parse_manifest(self, raw: bytes) -> Manifest:
        if not self.identities:
            raise no_identity(self.location)
        opened = Manifest.from_bytes(crypto.open_bytes(raw, self.identities, self.manifest_where), self.manifest_where)
        if self.source is not None and opened.source != self.source:
            raise CorruptObject(f"{self.manifest_where} belongs to source {opened.source!r}")
        self.source = opened.source
        return opened

    # Writing in the clear would leak into the opaque folder: only sealed writes here.
    def write_manifest(self, manifest: Manifest) -> int:
        raise TypeError("an encrypted archive's manifest is written sealed (see SealedArchive.commit)")

    def store(self, *args, **kwargs) -> ObjectRef:
        raise TypeError("objects reach an encrypted archive sealed (see SealedArchive.seal)")

    def write_sealed_manifest(self, sealed: bytes) -> None:
        self.backend.write(self._key(MANIFEST_AGE), io.BytesIO(sealed))

    def seal(self, local: Archive, ref: ObjectRef, number: int, kind: str, scratch: Path) -> ObjectRef:
        """Encrypt one local object to this archive's recipients and upload it; return its ref here."""
        where = f"{local.location}: {local._key(ref.name)}"
        with tempfile.TemporaryFile(dir=scratch) as sealed:
            with local.backend.open(local._key(ref.name)) as plain:
                plain_sha256, size, sha256 = crypto.encrypt(plain, sealed, self.recipients)
            # Checked on the way through, so a damaged local object is never sealed and shipped.
            if plain_sha256 != ref.sha256:
                raise CorruptObject(f"{where} is damaged (its content doesn't match the local manifest)",
                                    hint="run `syncd verify` on the state dir's archive")
            name = f"{OBJECTS}{number:010d}-{kind}-{sha256[:32]}{codec.SUFFIX[codec.ZSTD_AGE]}"
            sealed.seek(0)
            self.backend.write(self._key(name), sealed)
        return ObjectRef(name, size, sha256, codec.ZSTD_AGE, plain_sha256)

    # -- delivery: the layout's part of the one delivery path (see Archive and syncd.delivery.deliver) -----
    # The sync side can't decrypt the target's manifest, so it builds on the copy it kept of what it
    # wrote last (state records, by stage), after checking the target still holds exactly that.

    def delivered(self, manifest: Manifest, state: SourceState) -> tuple[int, list[ObjectRef]] | None:
        records = state.sealed_records(self.cursor_key)
        if WRITTEN not in records:
            return None
        return records[WRITTEN]["size"], recorded_manifest(records[WRITTEN], f"{state.cursors} ({WRITTEN})").objects()

    def delivered_before(self, state: SourceState) -> bool:
        return state.cursor(self.cursor_key) is not None or WRITTEN in state.sealed_records(self.cursor_key)

    def holding(self, state: SourceState) -> Manifest | None:
        """What the target holds, as written there last; an error if it holds something this state dir
        did not write, or not last."""
        raw = self.manifest_bytes()
        if raw is None:
            return None
        records = state.sealed_records(self.cursor_key)
        digest = (crypto.sha256(raw), len(raw))
        for stage in (WRITTEN, WRITING):  # `writing`: a pass that stopped right after the remote write
            record = records.get(stage)
            if record and (record["sha256"], record["size"]) == digest:
                return recorded_manifest(record, f"{state.cursors} ({stage})")
        if WRITTEN in records:
            raise PermanentError(f"{self.location}: the encrypted archive of {self.source!r} is not the one "
                                 "this machine wrote last (replaced or rolled back)",
                                 hint="check it with `syncd verify --identity FILE --state DIR`")
        raise ArchiveError(f"{self.location} already holds an encrypted archive of {self.source!r} "
                           "that this state dir did not write",
                           hint="sync this source under another --name, or to another target")

    def send(self, local: Archive, manifest: Manifest, held: Manifest, state: SourceState) -> Sent:
        """Encrypt and upload every object of `manifest` not here whole; what is, is used again
        (encrypting gives other bytes each time). A damaged copy is replaced by a new one."""
        key, records = self.cursor_key, state.sealed_records(self.cursor_key)
        last = recorded_manifest(records[WRITTEN], f"{state.cursors} ({WRITTEN})") if WRITTEN in records else None
        uploads, present = state.sealed_uploads(key), self.stored_objects()
        reusable = {f"{v.number}-{kind}-{ref.plain_sha256}": ref for m in (last, held) if m for v in m.versions
                    for kind, ref in (("delta", v.delta), ("base", v.base)) if ref}
        reusable |= {k: ObjectRef.from_dict(d) for k, d in uploads.items()}
        sent, versions, damaged = 0, [], []
        with tempfile.TemporaryDirectory(dir=state.root) as scratch:
            for version in manifest.versions:
                sealed = {}
                for kind in ("delta", "base"):
                    ref = getattr(version, kind)
                    if ref is None:
                        continue
                    upload = f"{version.number}-{kind}-{ref.sha256}"
                    earlier = reusable.get(upload)
                    if earlier and present.get(earlier.name) == earlier.size:
                        sealed[kind] = earlier
                        continue
                    if earlier and earlier.name in present:
                        damaged.append(earlier.name)
                    sealed[kind] = self.seal(local, ref, version.number, kind, Path(scratch))
                    sent += sealed[kind].size
                    uploads[upload] = sealed[kind].to_dict()
                    state.record_sealed_upload(key, uploads)
                versions.append(replace(version, **sealed))
        note = f"it held {len(damaged)} damaged object(s): sent again" if damaged else None
        # Replaced by new copies, the damaged ones go once the manifest no longer names them:
        # left alone they would fail `verify` from outside.
        return Sent(replace(manifest, versions=tuple(versions)), sent, note, damaged)

    def commit(self, manifest: Manifest, state: SourceState) -> int:
        """Seal the manifest and write it, recorded first as `writing` (it can't be read back here)."""
        raw = crypto.seal_bytes(manifest.to_bytes(), self.recipients)
        state.record_sealed(self.cursor_key, WRITING, crypto.sha256(raw), len(raw), _as_dict(manifest))
        self.write_sealed_manifest(raw)  # the target's commit point
        return len(raw)

    def settle(self, state: SourceState) -> None:
        state.settle_sealed(self.cursor_key)

    def media_area(self, areas: MediaAreas[AreaT]) -> AreaT:
        """The source's media in this archive's folder, sealed to its recipients under keyed names."""
        return areas.sealed(self)

    def _decode(self, ref: ObjectRef, stored: BinaryIO, plain: Path, where: str) -> None:
        if ref.codec != codec.ZSTD_AGE:
            raise CorruptObject(f"{where} has codec {ref.codec!r} in an encrypted archive")
        with tempfile.TemporaryFile(dir=plain.parent) as frame:
            if crypto.decrypt(stored, frame, self.identities, where) != ref.plain_sha256:
                raise CorruptObject(f"{where} decrypts to other content than the manifest records",
                                    hint="restore from another target, or run `syncd verify`")
            frame.seek(0)
            with open(plain, "wb") as out:
                codec.decode(frame, out, codec.ZSTD, where)


def no_identity(location: str) -> KeyProblem:
    return KeyProblem(f"{location} holds an encrypted archive and no identity was given",
                      hint="add --identity FILE (the key the target was encrypted to)")


def sealed_folders(backend: Backend) -> list[str]:
    """The folders on `backend` that hold an encrypted manifest."""
    suffix = "/" + MANIFEST_AGE
    return [info.name[: -len(suffix)] for info in backend.list("")
            if info.name.endswith(suffix) and FOLDER_NAME.match(info.name[: -len(suffix)])]


def open_sealed(backend: Backend, identities: Sequence[x25519.Identity], source: str | None) -> SealedArchive:
    """The encrypted archive of `source` (or the only one) that `identities` open on `backend`."""
    opened = open_all_sealed(backend, identities, source)
    return opened[choose_source(list(opened), source, backend.location)]


def open_all_sealed(backend: Backend, identities: Sequence[x25519.Identity],
                    wanted: str | None = None) -> dict[str, SealedArchive]:
    """Every encrypted archive on `backend` that `identities` open, by source.

    A damaged one fails the call unless `wanted` names a source that opened anyway."""
    folders = sealed_folders(backend)
    if not folders:
        raise ArchiveError(f"{backend.location} holds no encrypted syncd archive",
                           hint="check the target, or run `syncd sync --encrypt-to …` first")
    opened: dict[str, SealedArchive] = {}
    damaged: list[CorruptObject] = []
    for folder in folders:
        archive = SealedArchive(backend, folder, identities=identities)
        try:
            manifest = archive.manifest()
        except KeyProblem:
            continue  # encrypted to someone else
        except CorruptObject as e:
            damaged.append(e)  # fatal only if it may be the source asked for
            continue
        best = opened.get(manifest.source)
        # The same source encrypted to two sets of recipients: the longer history wins.
        if best is None or len(best.manifest().versions) < len(manifest.versions):
            opened[manifest.source] = archive
    if damaged and (wanted is None or wanted not in opened):
        raise damaged[0]
    if not opened:
        raise KeyProblem(f"none of the {len(folders)} encrypted archive(s) on {backend.location} "
                         "opens with the identity given",
                         hint="use the identity whose recipient the target was encrypted to")
    return opened


def _as_dict(manifest: Manifest) -> dict:
    return json.loads(manifest.to_bytes())


def recorded_manifest(record: dict, where: str) -> Manifest:
    """The manifest a state record says was written to an encrypted target."""
    return Manifest.from_bytes(json.dumps(record["manifest"], ensure_ascii=False).encode(), where)
