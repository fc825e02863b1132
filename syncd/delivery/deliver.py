"""One target's delivery, the same for every layout: what the target lacks, then its media, then
its manifest.

The steps and their order are here, once; what differs between a plain and an
encrypted target (what the target holds as this state dir can read it, how objects,
media and the manifest are written there) sits behind the archive classes
(`syncd.archive.plain.Archive`, `syncd.archive.sealed.SealedArchive`) and, for the
media store, in `syncd.delivery.media`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pluggy

from ..archive.manifest import Manifest
from ..archive.plain import Archive, must_hold
from ..archive.state import SourceState, writer_id
from ..backend import Backend
from ..errors import ArchiveError, PermanentError, SyncdError
from ..plugins import open_backend
from ..redact import redact_url
from .retry import RetryingBackend
from .target import Target

if TYPE_CHECKING:
    from .fanout import HeldHooks


@dataclass
class TargetReport:
    """How one target's delivery went, as `sync --json` and `syncd status` show it."""

    location: str
    ok: bool
    version: int | None  # the latest version the target holds, when known
    bytes: int = 0  # bytes uploaded by this pass
    error: str | None = None
    hint: str | None = None
    exit_code: int = 0  # of a failure: 2 for a delivery the command must not ask for (see syncd.errors)
    note: str | None = None  # what this pass repaired on the target

    def to_dict(self) -> dict:
        shown = dict(self.__dict__)
        del shown["exit_code"]  # the command's own exit code says it
        if self.note is None:
            del shown["note"]
        return shown


def target_archive(backend: Backend, source: str, target: Target) -> Archive:
    """How `source` is laid out on a target: in the clear, or sealed to its recipients."""
    if not target.encrypted:
        return Archive(backend, source)
    from ..archive.sealed import SealedArchive  # only an encrypted target pays for loading age

    return SealedArchive.for_source(backend, source, target.recipients())


def cursor_key(target: Target, source: str, backend: Backend | Exception | None = None) -> str:
    """Where the state dir keeps this target's deliveries of `source`: its archive's cursor, or its
    URL (secrets removed) while it can't be opened."""
    if backend is None or isinstance(backend, Exception):
        return redact_url(target.url)
    return target_archive(backend, source, target).cursor_key


def open_target(pm: pluggy.PluginManager, url: str) -> Backend | Exception:
    """The target's backend, retried (syncd.delivery.retry), or the unforeseen error opening it raised;
    a SyncdError (a URL its plugin refuses) is raised."""
    try:
        return RetryingBackend(open_backend(pm, url))
    except SyncdError:
        raise
    except Exception as e:
        return e


def delivery_to(backend: Backend | Exception, target: Target, local: Archive, manifest: Manifest,
                state: SourceState) -> tuple[str, Callable[[HeldHooks], TargetReport]]:
    """(where, call) for `deliver_all`: the delivery to an opened target, or the failure to open it."""
    if isinstance(backend, Exception):
        def fail(hooks: HeldHooks) -> TargetReport:
            raise backend  # reported by deliver_all, like any failure of one target
        return redact_url(target.url), fail

    def deliver(hooks: HeldHooks) -> TargetReport:
        return deliver_to(local, manifest, target_archive(backend, local.source, target), state, hooks)
    return backend.location, deliver


def record_failures(state: SourceState, keys: list[str], reports: list[TargetReport]) -> None:
    """Note each failed delivery beside its cursor, so `syncd status` shows what stays queued."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for key, report in zip(keys, reports):
        if not report.ok:
            state.record_failure(key, report.error, state.delivery(key).get("failures", 0) + 1, now, None)


def deliver_to(local: Archive, manifest: Manifest, target: Archive, state: SourceState,
               pm: pluggy.PluginManager | HeldHooks | None = None) -> TargetReport:
    """Upload what `target` lacks or holds damaged, then its manifest; a failure is reported, not raised.

    With `pm`, plugins hear of a target that received a version."""
    head, media = manifest.head, manifest.media_at()
    cursor = state.cursor(target.cursor_key)
    known = cursor and cursor["version"]
    try:
        # What a pass with nothing new costs: one listing, which also catches a lost or truncated
        # object (and, for a source with media, one of each media kind here and there).
        if cursor and cursor["hash"] == head.hash and cursor.get("media") == media:
            delivered = target.delivered(manifest, state)
            if delivered and not target.lacks(*delivered):
                resent = _deliver_media(local, manifest, target, state)
                note = "it had lost media objects: sent again" if resent else None
                return TargetReport(target.location, True, head.number, resent, note=note)
        from ..archive.claims import admit, holds_archives

        record = admit(target.backend, target.folder, local.source, writer_id(state.state_dir), target.recipients)
        held, note = target.holding(state), None
        if held is not None:
            known = held.head.number if held.head else 0
        elif target.delivered_before(state):
            if not holds_archives(target.backend):
                raise PermanentError(
                    f"{target.location} no longer holds the {target.described} it had "
                    f"(version {cursor['version'] if cursor else '?'})",
                    hint="is the share mounted? If it was emptied on purpose, remove "
                         f"{state.cursors} to upload everything again",
                )
            note = f"it had lost {target.folder}/{target.manifest_name}: delivered again"
        held = held or Manifest(local.source)
        if not manifest.extends(held):
            raise ArchiveError(f"{target.location} holds a different history of {local.source!r}",
                               hint="sync this source under another --name, or to another target")
        record()
        sent = target.send(local, manifest, held, state)
        if sent.bytes:  # what was there already matched the listing `send` made
            must_hold(target, None, sent.manifest.objects())
        media_sent = _deliver_media(local, manifest, target, state)  # before the manifest naming its listing
        size = target.commit(sent.manifest, state)  # the target's commit point
        must_hold(target, size, [])
        target.settle(state)
        state.set_cursor(target.cursor_key, head.number, head.hash, media)
        known = head.number
        for name in sent.replaced:
            target.delete_object(name)
    except SyncdError as e:
        return TargetReport(target.location, False, known, error=str(e), hint=e.hint, exit_code=e.exit_code)
    if pm is not None:
        pm.hook.target_updated(source=local.source, location=target.location, version=head.number)
    return TargetReport(target.location, True, head.number, sent.bytes + media_sent + size, note=note or sent.note)


def _deliver_media(local: Archive, manifest: Manifest, target: Archive, state: SourceState) -> int:
    """The media step (syncd.delivery.media), imported only for a source that has media: a pass
    with nothing new must not pay for the media store's modules."""
    if not manifest.media:
        return 0
    from .media import deliver_media

    return deliver_media(local, manifest, target, state)
