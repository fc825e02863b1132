"""One sync pass: snapshot, diff into the mirror, persist locally, then deliver to every target
(the delivery itself is syncd.delivery's).

The local archive's manifest is the local commit point: once it names a
version, that version survives anything, and every later pass delivers it to
targets that lack it. Until then the version doesn't exist: a crash before it
only means the next pass finds the same changes on the phone again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import apsw
import pluggy

from .archive.plain import Archive, check_source_name
from .backend import Backend
from .capture.detect import Plan, plan_changes
from .errors import CorruptObject, SourceError, UsageError, no_space
from .log import get_logger
from .delivery.deliver import TargetReport, cursor_key, delivery_to, open_target, record_failures
from .delivery.fanout import deliver_all
from .fsutil import fsync_dir, fsync_file, private_opener
from .archive.manifest import Manifest, Version
from .plugins import open_backend, open_source
from .source import Database, SourceKind, SourceMedia, SourceOptions
from .capture.snapshot import WAIT_HINT, Snapshot, SnapshotStore
from .archive.state import SourceState, kind_workdir
from .delivery.target import Target, as_target

if TYPE_CHECKING:
    from .media.backup import MediaPass
    from .mirror.mirror import Mirror

# A pass that finds nothing new imports only what it uses (the mirror, restore, encryption and
# the target claims are imported where a change or a repair needs them): issue 11 holds it to
# within 50 ms of `syncd --version`.

log = get_logger(__name__)

# A restore applies at most this many deltas after a base…
BASE_MAX_CHAIN = 32
# …and a new base is also made once the deltas since the last one outweigh it.
BASE_DELTA_RATIO = 1.0


@dataclass
class SyncReport:
    """What one pass did for one database: the version it made, and each target's delivery."""

    source: str
    version: Version | None  # the version this pass created; None when nothing changed
    head: int  # the latest version archived
    targets: list[TargetReport] = field(default_factory=list)
    detection: Plan | None = None  # which comparison ran, and why
    media: MediaPass | None = None  # what the pass over the source's media folders did, if it has any

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)

    def to_dict(self) -> dict:
        v = self.version
        return {
            "source": self.source,
            "changed": v is not None,
            "version": v.number if v else None,
            "head": self.head,
            "time": v.time if v else None,
            "rows": v.rows if v else None,
            "bytes": v.stored_bytes if v else 0,
            "targets": [t.to_dict() for t in self.targets],
            "detection": self.detection.to_dict() if self.detection else None,
        } | ({"media": self.media.__dict__} if self.media else {})


def sync_source(path: Path, targets: list[str | Target], *, state_dir: Path, pm: pluggy.PluginManager,
                options: SourceOptions | None = None, kind: str | None = None,
                full: bool = False, media: Sequence[Path] = ()) -> list[SyncReport]:
    """Archive every database `path` holds (one for a plain file, one per app in an iOS backup)
    and bring every target up to date; one report per database.

    The kind is the one named, or the first whose `recognises(path)` says yes (see
    syncd.source). A target is a URL, or a `Target` that may carry recipients to encrypt
    to. `full` compares every row instead of only those in changed pages. `media` folders
    are archived with the database (see syncd.media), which must then be the only one. Raises
    SourceError or KeyProblem when the path can't be opened at all.
    """
    options = options or SourceOptions()
    if options.name is not None:
        check_source_name(options.name)  # before anything is made in the state dir
    # Given twice, a target gets one delivery: two at once would race for its cursor.
    targets = list(dict.fromkeys(as_target(t) for t in targets))
    backends: dict[Target, Backend | Exception] = {}
    try:
        # A URL its plugin refuses refuses the command, before anything is done; a plugin
        # failing in a way nobody foresaw fails only its own target, in deliver_all.
        for target in targets:
            backends[target] = open_target(pm, target.url)
        with opened_source(pm, path, options, state_dir, kind) as source:
            databases = listed(source, path)
            if media and len(databases) > 1:
                raise UsageError(f"{path} holds {len(databases)} databases; --media belongs to one",
                                 hint="sync each database with its own media folders (give the database's file)")
            return [sync_database(source, db, backends, state_dir=state_dir, pm=pm, full=full, media=media)
                    for db in databases]
    finally:
        for backend in backends.values():
            if not isinstance(backend, Exception):
                backend.close()


def sync(source: Path, targets: list[str | Target], *, state_dir: Path, pm: pluggy.PluginManager,
         name: str | None = None, full: bool = False) -> SyncReport:
    """`sync_source` for a path holding one database, named `name` (else after its file)."""
    reports = sync_source(source, targets, state_dir=state_dir, pm=pm, options=SourceOptions(name=name), full=full)
    if len(reports) != 1:
        raise UsageError(f"{source} holds {len(reports)} databases", hint="sync it with sync_source")
    return reports[0]


@contextmanager
def opened_source(pm: pluggy.PluginManager, path: Path, options: SourceOptions, state_dir: Path,
                  kind: str | None = None) -> Iterator[SourceKind]:
    """The source at `path`, opened by its kind, with a private work folder in the state dir."""
    source = open_source(pm, path, options, partial(kind_workdir, state_dir, Path(path)), kind)
    try:
        yield source
    finally:
        source.close()


def listed(source: SourceKind, path: Path) -> list[Database]:
    """The databases a source holds now: at least one, with names syncd can use."""
    databases = source.databases()
    if not databases:
        raise SourceError(f"{path} holds no chat database syncd knows",
                          hint=f"it was read as {source.kind!r}; --kind picks another reading")
    for db in databases:
        check_source_name(db.name)
    return databases


def sync_database(source: SourceKind, db: Database, backends: dict[Target, Backend | Exception], *,
                  state_dir: Path, pm: pluggy.PluginManager, full: bool = False,
                  media: Sequence[Path] = ()) -> SyncReport:
    """Archive what changed in one database of `source` as a new version (and its `media` folders'
    files), and deliver it to the targets (each opened, or the error opening it raised)."""
    name = db.name
    state = SourceState(state_dir, name)
    with state.locked():
        local = Archive(open_backend(pm, str(state.archive_dir)), name)
        manifest, created, plan = archive_locally(source, db, state, local, pm, full=full)
        listed = source.media(db) if hasattr(source, "media") else ()
        manifest, media_pass = archive_media(local, manifest, state, media, listed=(source.kind, listed), pm=pm)
        reports = deliver_all([delivery_to(backend, t, local, manifest, state) for t, backend in backends.items()], pm)
        record_failures(state, [cursor_key(t, name, backend) for t, backend in backends.items()], reports)
    return SyncReport(name, created, manifest.head.number, reports, plan, media_pass)


def archive_media(local: Archive, manifest: Manifest, state: SourceState, folders: Sequence[Path],
                  listed: tuple[str, Iterable[SourceMedia]] = ("", ()),
                  pm: pluggy.PluginManager | None = None) -> tuple[Manifest, MediaPass | None]:
    """Store the media folders' new files (and `listed`: a label and the media files the source kind
    lists for the database, such as an iOS backup's attachments) in the local store and record their
    listing at the head: the local commit of the media, as the manifest is the database's (files
    before the listing, the listing before the manifest that names it). With `pm`, the app profile
    reading the database gives its messages' media references, and those naming no file are listed
    as absent."""
    label, files = listed
    files = _nonempty(files)
    if not (folders or files) or not manifest.head:
        return manifest, None
    from .media.backup import ListedMedia, back_up_folders, labelled
    from .media.references import media_references
    from .delivery.media import local_area

    origins: dict = labelled(folders)
    if files:
        while label in origins:
            label += "-source"
        origins[label] = ListedMedia(f"{label}:{local.source}", files)
    try:
        references = partial(media_references, pm, state.staging, state.root / "media") if pm else tuple
        done = back_up_folders(local_area(local), origins, state.root, references)
    except OSError as e:
        full_disk = no_space(e, state.root)
        if full_disk is not None:
            raise full_disk from None
        raise SourceError(f"a media folder can't be read: {e.strerror}: {e.filename}",
                          hint="check the --media folders exist and can be read") from None
    updated = manifest.with_media(done.listing)
    if updated is not manifest:
        local.write_manifest(updated)  # the local commit point of this media listing
    return updated, done


def _nonempty(files: Iterable[SourceMedia]) -> Iterable[SourceMedia]:
    """`files` as given, or () if it has none: a kind's media may be an iterator, true even when empty."""
    if isinstance(files, Sequence):
        return files
    files = iter(files)
    first = next(files, None)
    return () if first is None else chain([first], files)


def archive_locally(source: SourceKind, db: Database, state: SourceState, local: Archive,
                    pm: pluggy.PluginManager, *, full: bool = False) -> tuple[Manifest, Version | None, Plan]:
    """Snapshot one database of `source` and persist what changed as a new local version: the local commit.

    Returns the local manifest, the version made (None if nothing changed) and how the
    changes were found. Raises SourceError for a source that can't be archived.
    """
    snapshots = SnapshotStore(state.staging)
    try:
        if not full and snapshots.untouched(db.signature) and (manifest := local.manifest()) and manifest.head:
            return manifest, None, Plan("unchanged", f"the {source.kind} source vouches it is as last archived")
        snapshot = snapshots.take(source.materialise(db), companions=db.companions, reread=full)
        manifest, created, plan = record_version(state, local, snapshot, full=full, origin=db.origin)
    except SourceError as e:
        state.record_source_error(str(e), e.hint)  # for `syncd status`
        raise
    except (apsw.FullError, OSError) as e:
        full_disk = no_space(e, state.root)  # nothing is committed: the next pass tries again
        if full_disk is None:
            raise
        raise full_disk from None
    state.clear_source_error()
    snapshots.settle(snapshot, db.signature)
    log.info("%s: %s comparison (%s)", local.source, plan.path, plan.reason)
    if created:
        pm.hook.version_persisted(source=local.source, version=created)
    return manifest, created, plan


def record_version(state: SourceState, local: Archive, snapshot: Snapshot, *, full: bool = False,
                   origin: Mapping[str, str] | None = None) -> tuple[Manifest, Version | None, Plan]:
    """Persist the snapshot's changes as a new local version, if there are any.

    The mirror commits first and the local manifest last: a crash in between
    leaves a mirror ahead of the archive, which `open_mirror` rebuilds, and the
    next pass finds the same changes again. `origin` (the source kind's record of
    where the database came from) is written with the next version.
    """
    manifest = local.manifest() or Manifest(local.source)
    if origin:
        manifest = manifest.with_origin(origin)
    if snapshot.unchanged and manifest.head:
        return manifest, None, plan_changes(snapshot)
    mirror = open_mirror(state, local, manifest)
    if mirror is None:
        manifest = _record_first(state, local, manifest, snapshot)
        return manifest, manifest.head, Plan("full", "the first version")
    try:
        with _reading(snapshot):
            plan = plan_changes(snapshot, force_full=full)
            changes = mirror.absorb(snapshot.path, plan=plan)
        if not changes.changeset:
            mirror.rollback()
            return manifest, None, plan
        number = manifest.head.number + 1
        import tempfile

        with tempfile.TemporaryDirectory(dir=state.root) as tmp:
            delta_file = Path(tmp, "delta")
            with open(delta_file, "wb", opener=private_opener) as out:
                out.write(changes.changeset)
            delta = local.store(delta_file, "delta", number, Path(tmp))
            mirror.commit(number)
            manifest = manifest.append(changes.counts.as_dict(), delta=delta)
            # A base wherever tables change shape keeps every delta a plain row
            # patch (see docs/format.md), besides keeping restores short.
            if changes.reshaped or base_due(manifest):
                copy = Path(tmp, "base.db")
                open(copy, "xb", opener=private_opener).close()  # VACUUM INTO fills an empty file
                mirror.vacuum_into(copy)
                manifest = manifest.with_base(number, local.store(copy, "base", number, Path(tmp)))
        local.write_manifest(manifest)  # the local commit point
        return manifest, manifest.head, plan
    finally:
        mirror.close()


def _record_first(state: SourceState, local: Archive, manifest: Manifest, snapshot: Snapshot) -> Manifest:
    """The first version is a base: the whole mirror, built in a new file."""
    from concurrent.futures import ThreadPoolExecutor

    from .mirror.mirror import Mirror, remove_database

    building = state.mirror_path.with_suffix(".new")
    remove_database(building)
    mirror = Mirror(building, encoding=_encoding_of(snapshot.path), bulk=True)
    try:
        with _reading(snapshot):
            changes = mirror.absorb(snapshot.path, record=False)
        mirror.commit(1)
    finally:
        mirror.close()
    # Written without a journal or syncs: make it durable before it becomes the mirror, since a
    # mirror that lost pages but not its version number would skew every later diff. The disk
    # does that while the CPU compresses the base.
    with ThreadPoolExecutor(1) as background:
        synced = background.submit(fsync_file, building)
        base = local.store(building, "base", 1, state.root)
        synced.result()
    manifest = manifest.append(changes.counts.as_dict(), base=base)
    local.write_manifest(manifest)  # the local commit point
    remove_database(state.mirror_path)
    os.replace(building, state.mirror_path)
    remove_database(building)  # its emptied -wal
    fsync_dir(state.root)
    return manifest


@contextmanager
def _reading(snapshot: Snapshot):
    """Rows are only read here, so a half-copied or damaged file shows here, before any commit."""
    try:
        yield
    except (apsw.CorruptError, apsw.NotADBError) as e:
        raise SourceError(f"{snapshot.source} is damaged: {str(e).splitlines()[0]}", hint=WAIT_HINT) from None


def _encoding_of(database: Path) -> str:
    db = apsw.Connection(str(database))
    try:
        return db.execute("PRAGMA encoding").fetchall()[0][0]
    finally:
        db.close()


def base_due(manifest: Manifest) -> bool:
    """Whether the head should get a base, so restores stay short."""
    since_base = []
    for version in reversed(manifest.versions):
        if version.base:
            break
        since_base.append(version)
    if not since_base:
        return False
    if len(since_base) >= BASE_MAX_CHAIN:
        return True
    return sum(v.delta.size for v in since_base) >= version.base.size * BASE_DELTA_RATIO


def open_mirror(state: SourceState, local: Archive, manifest: Manifest) -> Mirror | None:
    """The mirror at the local archive's head; rebuilt from the archive if a crash left it elsewhere."""
    from .mirror.mirror import Mirror

    head = manifest.head.number if manifest.head else 0
    if head == 0:
        return None
    if state.mirror_path.exists():
        try:
            mirror = Mirror(state.mirror_path)
        except (apsw.Error, CorruptObject) as e:
            # The mirror is derived from the local archive, so a damaged one is rebuilt, not fatal.
            log.warning("%s: rebuilding the mirror from the local archive (%s)", local.source, e)
        else:
            if mirror.version == head:
                return mirror
            mirror.close()
    from .readback.restore import build_mirror  # rarely needed: only after a crash

    return build_mirror(local, manifest, head, state.mirror_path)
