"""Media to a target, the media step of the one delivery path (syncd.delivery.deliver): what the
local store holds and the target lacks, objects before what names them.

The local store (syncd.media, in the source's local archive) is copied object by object: packs and
chunks, then index objects, then listings, each read from the local store checked against its name.
A target that lost an object gets it again on the next pass; one that holds it already is sent
nothing. Where the media lies differs by layout, and the archive picks (Archive.media_area): a plain
target shares one store in the clear; an encrypted one gets every object sealed to its recipients
under a keyed name (see syncd.media.area), the key made on the first delivery, kept in the state
dir and sealed beside.
"""

from __future__ import annotations

import io
import json
import secrets
from typing import TYPE_CHECKING

from ..archive.manifest import Manifest
from ..archive.plain import Archive
from ..archive.state import SourceState
from ..errors import ArchiveError
from ..fsutil import atomic_write
from ..media.area import KINDS, MEDIA_KEY_BYTES, Area, PlainArea, SealedArea, key_object

if TYPE_CHECKING:
    from ..archive.sealed import SealedArchive


def local_area(local: Archive) -> PlainArea:
    """The source's local media store: beside its archive in the state dir."""
    return PlainArea(local.backend)


def deliver_media(local: Archive, manifest: Manifest, target: Archive, state: SourceState) -> int:
    """Send `target` what it lacks of the local media store, before the manifest naming its listing
    is written; the bytes sent (a source without media costs not even a listing)."""
    if not manifest.media:
        return 0
    return copy_store(local_area(local), target.media_area(TargetAreas(state)))


def copy_store(local: PlainArea, target: Area) -> int:
    """Copy what `target` lacks (or holds damaged, as far as a listing shows) of `local`; the bytes sent."""
    sent = 0
    for kind in KINDS:
        there = target.names(kind)
        for name, size in sorted(local.names(kind).items()):
            key = target.key(name)
            if key in there and target.holds_whole(there[key], size):
                continue
            sent += target.copy_from(local, kind, name, size)
    return sent


class TargetAreas:
    """Where a target's media is written, per layout (see syncd.archive.plain.MediaAreas)."""

    def __init__(self, state: SourceState):
        self.state = state

    def plain(self, archive: Archive) -> Area:
        return PlainArea(archive.backend)

    def sealed(self, archive: SealedArchive) -> Area:
        path = self.state.media_key_path(archive.cursor_key)
        try:
            media_key = bytes.fromhex(json.loads(path.read_text())["key"])
        except FileNotFoundError:
            media_key = _new_media_key(archive, self.state)
        from ..archive import crypto  # only for an encrypted target

        recipients = archive.recipients
        return SealedArea(archive.backend, archive.folder, media_key,
                          seal=lambda data: crypto.seal_bytes(data, recipients))


def _new_media_key(archive: SealedArchive, state: SourceState) -> bytes:
    """A new media key for an encrypted archive, kept (0600) before it is sealed onto the target."""
    if archive.backend.list(key_object(archive.folder)):
        raise ArchiveError(f"{archive.location}: the encrypted media of {archive.source!r} was written with a key "
                           "this state dir no longer has",
                           hint="restore the state dir from a backup, or sync this source under another --name")
    from ..archive import crypto

    media_key = secrets.token_bytes(MEDIA_KEY_BYTES)
    atomic_write(state.media_key_path(archive.cursor_key), json.dumps({"key": media_key.hex()}).encode())
    archive.backend.write(key_object(archive.folder), io.BytesIO(crypto.seal_bytes(media_key, archive.recipients)))
    return media_key
