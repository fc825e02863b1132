"""What the daemon has done, read from the state dir alone (so it works whether the daemon runs or not)."""

from __future__ import annotations

import pluggy

from .archive import Archive
from .config import Config
from .daemon import open_target
from .errors import SyncdError
from .manifest import Version
from .plugins import open_backend
from .state import SourceState
from .sync import target_archive


def status(config: Config, pm: pluggy.PluginManager) -> dict:
    """Per source its last version; per target the version it has, what is pending, its last error."""
    return {"config": str(config.path), "state_dir": str(config.state_dir),
            "sources": [_source(config, source, pm) for source in config.sources]}


def _source(config: Config, source, pm) -> dict:
    state = SourceState(config.state_dir, source.name)
    # Before the first pass there is no local archive yet, and so nothing archived.
    archived = state.archive_dir.is_dir()
    manifest = Archive(open_backend(pm, str(state.archive_dir)), source.name).manifest() if archived else None
    head = manifest.head if manifest else None
    versions = manifest.versions if manifest else []
    return {
        "name": source.name, "path": str(source.path),
        "version": head.number if head else None, "time": head.time if head else None,
        "rows": head.rows if head else None,
        "targets": [_target(state, source.name, target, versions, pm) for target in config.targets],
    }


def _target(state: SourceState, source: str, target, versions: list[Version], pm) -> dict:
    location = target.display
    try:
        backend = open_target(pm, target)
        location = backend.location
        cursor = target_archive(backend, source, target.target()).cursor_key
        backend.close()
    except SyncdError as e:
        record = {"error": str(e)}
    else:
        record = state.delivery(cursor)
    has = record.get("version")
    pending = [v for v in versions if has is None or v.number > has]
    return {
        "url": target.display, "location": location, "version": has,
        "pending_versions": len(pending), "pending_bytes": sum(v.stored_bytes for v in pending),
        "error": record.get("error"), "failures": record.get("failures", 0),
        "failed_at": record.get("failed_at"), "next_retry": record.get("next_retry"),
    }
