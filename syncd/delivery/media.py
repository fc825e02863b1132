"""Media to a target: what the local store holds and the target lacks, objects before what names them.

The local store (syncd.media, in the source's local archive) is copied object by object: packs and
chunks, then index objects, then listings, each read from the local store checked against its name.
A target that lost an object gets it again on the next pass; one that holds it already is sent
nothing. An encrypted target gets every object sealed to its recipients under a keyed name (see
syncd.media.area); the key is made on the first delivery, kept in the state dir and sealed beside.
"""

from __future__ import annotations

import io
import json
import secrets

from ..archive.plain import Archive
from ..archive.state import SourceState
from ..errors import ArchiveError
from ..fsutil import atomic_write
from ..media.area import KINDS, MEDIA_KEY_BYTES, Area, PlainArea, SealedArea, key_object


def local_area(local: Archive) -> PlainArea:
    """The source's local media store: beside its archive in the state dir."""
    return PlainArea(local.backend)


def send_media(local: Area, target: Area) -> int:
    """Copy what `target` lacks (or holds at another size, in the clear) of `local`; the bytes sent."""
    sent = 0
    for kind in KINDS:
        there = target.names(kind)
        for name, size in sorted(local.names(kind).items()):
            key = target.key(name)
            # A sealed object's size differs by age's random header: its presence is what a listing shows.
            if key in there and (target.sealed or there[key] == size):
                continue
            sent += target.write(kind, name, local.read(kind, name, size))
    return sent


def target_area(archive: Archive, state: SourceState) -> Area:
    """Where `archive`'s media goes on its target: the shared store in the clear, or sealed in its folder."""
    if not archive.sealed:
        return PlainArea(archive.backend)
    path = state.media_key_path(archive.cursor_key)
    try:
        media_key = bytes.fromhex(json.loads(path.read_text())["key"])
    except FileNotFoundError:
        media_key = _new_media_key(archive, state)
    from ..archive import crypto  # only for an encrypted target

    recipients = archive.recipients
    return SealedArea(archive.backend, archive.folder, media_key,
                      seal=lambda data: crypto.seal_bytes(data, recipients))


def _new_media_key(archive: Archive, state: SourceState) -> bytes:
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
