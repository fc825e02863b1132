"""Rebuilding any version from an archive alone: a base, the deltas after it, then export."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Sequence

import apsw

from ..archive.plain import Archive, choose_source, list_sources
from ..backend import Backend
from ..errors import ArchiveError, CorruptObject, SyncdError, UsageError, no_space
from ..archive.manifest import Manifest, Version

# (plain database, where to write the app's file, the origin its source kind recorded)
WriteBack = Callable[[Path, Path, Mapping[str, str]], None]

if TYPE_CHECKING:
    from pyrage import x25519

    from ..archive.sealed import SealedArchive
    from ..media.area import Area
    from ..mirror.mirror import Mirror

# `syncd log` reads only a manifest: what rebuilds rows (the mirror, export, scratch files), opens
# an encrypted archive or reads media is imported by the functions that do it.


def build_mirror(archive: Archive, manifest: Manifest, number: int, path: Path) -> Mirror:
    """Rebuild the mirror as of version `number` into `path`, replacing what is there."""
    from ..mirror.mirror import Mirror, remove_database

    plan = manifest.restore_plan(number)
    remove_database(path)
    with reading(archive, plan[0], path.parent):
        archive.fetch(plan[0].base, path)
        mirror = Mirror(path, untrusted=True)
    if (held := mirror.version) != plan[0].number:
        mirror.close()
        raise CorruptObject(f"{archive.location}: the base of version {plan[0].number} holds version {held}")
    try:
        replay(mirror, archive, plan[1:])
    except BaseException:
        mirror.close()
        raise
    return mirror


def replay(mirror: Mirror, archive: Archive, versions: list[Version]) -> None:
    """Apply the deltas of `versions`, in order, committing each."""
    import tempfile

    for version in versions:
        if version.delta is None:
            raise ArchiveError(f"version {version.number} has no delta to apply")
        with reading(archive, version, mirror.path.parent), tempfile.TemporaryDirectory(dir=mirror.path.parent) as tmp:
            changeset = Path(tmp, "delta")
            archive.fetch(version.delta, changeset)
            mirror.apply(changeset.read_bytes())
            mirror.commit(version.number)


@contextmanager
def reading(archive: Archive, version: Version, folder: Path):
    """Name the archive and version in what goes wrong while turning its objects into a database.

    The boundary for the libraries' errors: a full disk is the disk's fault, anything else the object's.
    """
    where = f"{archive.location}: version {version.number} of {archive.source!r}"
    try:
        yield
    except CorruptObject as e:
        named = str(e).startswith(archive.location)  # a damaged object names itself
        raise CorruptObject(str(e) if named else f"{where}: {e}", hint=e.hint) from None
    except (apsw.Error, OSError) as e:
        full = no_space(e, folder)
        if full:
            raise full from None
        if isinstance(e, OSError):
            raise
        raise CorruptObject(f"{where} doesn't hold a usable mirror ({str(e).splitlines()[0]})",
                            hint="run `syncd verify` on the target") from None


def open_archive(backend: Backend, source: str | None, identities: Sequence[x25519.Identity] = ()) -> Archive:
    """The archive of `source` (or the only one) on `backend`: plain, or encrypted if `identities` are given."""
    plain = list_sources(backend)
    if source not in plain and (identities or not plain) and _holds_sealed(backend):
        from ..archive.sealed import no_identity, open_sealed

        if not identities:
            raise no_identity(backend.location)
        return open_sealed(backend, identities, source)
    if not plain and source is None:
        raise ArchiveError(f"{backend.location} holds no syncd archive", hint="check the target, or run `syncd sync` first")
    return Archive(backend, choose_source(plain, source, backend.location))


def _holds_sealed(backend: Backend) -> bool:
    from ..archive.sealed import sealed_folders  # loads age: only where plain archives don't answer

    return bool(sealed_folders(backend))


def open_archives(backend: Backend, identities: Sequence[x25519.Identity] = ()) -> list[Archive]:
    """Every source's archive on `backend`, by name: the plain ones, and the encrypted ones
    `identities` open (an iOS backup gives a target one source per app)."""
    archives = {name: Archive(backend, name) for name in list_sources(backend)}
    if identities and _holds_sealed(backend):
        from ..archive.sealed import open_all_sealed

        archives.update(open_all_sealed(backend, identities))
    elif not archives:
        open_archive(backend, None, identities)  # raises what is missing: an archive, or an identity
    return [archives[name] for name in sorted(archives)]


def read_manifest(archive: Archive) -> Manifest:
    manifest = archive.manifest()
    if manifest is None:
        raise ArchiveError(f"{archive.location} has no manifest for {archive.source!r}")
    return manifest


def choose_version(manifest: Manifest, number: int | None, at: datetime | None) -> Version:
    if number is not None and at is not None:
        raise UsageError("give --version or --at, not both")
    return manifest.at(at) if at is not None else manifest.version(number)


def restore(archive: Archive, output: Path, *, number: int | None = None, at: datetime | None = None,
            force: bool = False, write_back: WriteBack | None = None, media: Path | None = None) -> Version:
    """Write the source's database as of a version (the latest by default) to `output`, and with
    `media`, the media tree as it was at that version into that new or empty folder.

    With `write_back(plain, out, origin)`, the plain database is written as the app keeps
    it (re-encrypted, from the origin its source kind recorded) rather than in the clear."""
    import tempfile

    from .export import export_database
    from ..mirror.mirror import remove_database

    output = Path(output).absolute()
    if output.is_dir():
        raise UsageError(f"{output} is a folder", hint="give the path of the database file to write")
    if output.exists() and not force:
        raise UsageError(f"{output} already exists", hint="choose another path, or add --force to replace it")
    if not output.parent.is_dir():
        raise UsageError(f"folder {output.parent} does not exist", hint="create it first")
    manifest = read_manifest(archive)
    version = choose_version(manifest, number, at)
    listing = media_listing(manifest, version) if media is not None else None
    if media is not None and Path(media).exists() and (not Path(media).is_dir() or any(Path(media).iterdir())):
        raise UsageError(f"{media} is not an empty folder", hint="restore media into a new or empty folder")
    try:
        scratch = tempfile.TemporaryDirectory(dir=output.parent, prefix=".syncd-restore-")
    except OSError as e:
        raise SyncdError(f"can't write in {output.parent}: {e.strerror}", hint="restore into a folder you can write to") from None
    with scratch as tmp:
        mirror = build_mirror(archive, manifest, version.number, Path(tmp, "mirror.db"))
        try:
            with reading(archive, version, output.parent):
                export_database(mirror, str(Path(tmp, "restored.db")))
        finally:
            mirror.close()
        restored = Path(tmp, "restored.db")
        if write_back is not None:
            write_back(restored, Path(tmp, "app.db"), dict(manifest.origin))
            restored = Path(tmp, "app.db")
        if listing is not None:  # all of it renamed into place, or nothing
            from ..media.restore import restore_media

            restore_media(reading_area(archive), listing, Path(media))
        remove_database(output)
        os.replace(restored, output)
    return version


def media_listing(manifest: Manifest, version: Version) -> str:
    """The media listing current at `version`; an error if the source had no media then."""
    listing = manifest.media_at(version.number)
    if listing is None:
        raise ArchiveError(f"version {version.number} of {manifest.source!r} has no media archived",
                           hint="media is kept from the first `syncd sync … --media DIR` on; restore without --media")
    return listing


def reading_area(archive: Archive) -> Area:
    """Where `archive`'s media is read: the target's shared store, or the encrypted archive's own."""
    return archive.media_area(ReadingAreas())


class ReadingAreas:
    """Where a target's media is read, per layout (see syncd.archive.plain.MediaAreas)."""

    def plain(self, archive: Archive) -> Area:
        from ..media.area import PlainArea

        return PlainArea(archive.backend)

    def sealed(self, archive: SealedArchive) -> Area:
        from ..archive import crypto
        from ..media.area import SealedArea, read_media_key

        identities = archive.identities
        unseal = lambda data, where: crypto.open_bytes(data, identities, where)  # noqa: E731
        media_key = read_media_key(archive.backend, archive.folder, unseal)
        if media_key is None:
            raise CorruptObject(f"{archive.location}: {archive.folder}/media/key.age is missing",
                                hint="run `syncd verify` on the target")
        return SealedArea(archive.backend, archive.folder, media_key, unseal=unseal)
