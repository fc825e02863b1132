"""What syncd has done, read from the state dir alone (so it works whether the daemon runs or not).

With the daemon's config, it reports the configured sources and targets; without one,
every source the state dir holds and every target it has delivered to, as a user of
`syncd sync --state DIR` needs to see what stays queued.
"""

from __future__ import annotations

from pathlib import Path

import pluggy

from ..archive.plain import Archive
from .config import Config, TargetConfig
from ..errors import SyncdError
from ..log import get_logger
from ..archive.manifest import Manifest, Version
from ..plugins import open_backend
from ..archive.state import SourceState, known_sources
from ..delivery.deliver import cursor_key

log = get_logger(__name__)


def status(config: Config | None, pm: pluggy.PluginManager, state_dir: Path | None = None) -> dict:
    """Per source its last version and last error; per target the version it has, what is pending, its
    last error. `state_dir` overrides the config's; without a config it is required."""
    state_dir = Path(state_dir or config.state_dir)
    if config is None:
        sources = [_source(SourceState(state_dir, name), name, None, None, pm) for name in known_sources(state_dir)]
    else:
        sources = [_source(SourceState(state_dir, s.name), s.name, s.path, config.targets, pm) for s in config.sources]
    return {"config": str(config.path) if config else None, "state_dir": str(state_dir), "sources": sources}


def _source(state: SourceState, name: str, path: Path | None, targets: list[TargetConfig] | None, pm) -> dict:
    manifest = _local_manifest(state, name, pm)
    head = manifest.head if manifest else None
    versions = manifest.versions if manifest else []
    if targets is None:
        records = [(record.get("location"), record) for record in state.deliveries()]
    else:
        records = [_configured(state, name, target, pm) for target in targets]
    return {
        "name": name, "path": str(path) if path else None,
        "version": head.number if head else None, "time": head.time if head else None,
        "rows": head.rows if head else None, "versions": len(versions),
        "error": state.source_error(),
        "targets": [_target(location, record, versions) for location, record in records],
    }


def _local_manifest(state: SourceState, name: str, pm) -> Manifest | None:
    # Before the first pass there is no local archive yet, and so nothing archived.
    if not state.archive_dir.is_dir():
        return None
    return Archive(open_backend(pm, str(state.archive_dir)), name).manifest()


def _configured(state: SourceState, source: str, target: TargetConfig, pm) -> tuple[str, dict]:
    """A configured target's location and delivery record; a target that can't even be opened gets
    that error, so one bad target never hides the others."""
    try:
        backend = target.open(pm)
        try:
            return backend.location, {"url": target.display} | state.delivery(
                cursor_key(target.target(), source, backend))
        finally:
            backend.close()
    except SyncdError as e:
        return target.display, {"url": target.display, "error": str(e)}
    except Exception as e:  # a plugin's bug: status still shows every other target
        log.debug("opening %s failed", target.display, exc_info=True)
        return target.display, {"url": target.display, "error": f"the target can't be opened ({type(e).__name__})"}


def _target(location: str | None, record: dict, versions: list[Version]) -> dict:
    has = record.get("version")
    pending = [v for v in versions if has is None or v.number > has]
    return {
        "url": record.get("url", location), "location": location, "version": has,
        "pending_versions": len(pending), "pending_bytes": sum(v.stored_bytes for v in pending),
        "error": record.get("error"), "failures": record.get("failures", 0),
        "failed_at": record.get("failed_at"), "next_retry": record.get("next_retry"),
    }
