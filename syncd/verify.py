"""Checking a target: every manifest's chain, and every object against its recorded hash."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .archive import OBJECTS, Archive, list_sources
from .backend import Backend
from .errors import SyncdError


@dataclass
class SourceCheck:
    source: str
    versions: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)  # leftovers of interrupted uploads: harmless

    def to_dict(self) -> dict:
        return dict(self.__dict__, ok=not self.problems)


def verify(backend: Backend, sources: list[str] | None = None) -> list[SourceCheck]:
    """Check each source's archive on `backend` (all of them by default)."""
    return [_check_source(Archive(backend, name)) for name in (sources or list_sources(backend))]


def _check_source(archive: Archive) -> SourceCheck:
    check = SourceCheck(archive.source)
    try:
        manifest = archive.manifest()
    except SyncdError as e:
        check.problems.append(str(e))
        return check
    if manifest is None:
        check.problems.append(f"{archive.source}/manifest.json is missing")
        return check
    check.versions = len(manifest.versions)
    check.problems += manifest.chain_problems()
    stored = {info.name[len(archive.source) + 1:]: info.size
              for info in archive.backend.list(f"{archive.source}/{OBJECTS}")}
    referenced = manifest.objects()
    check.objects = len(referenced)
    with tempfile.TemporaryDirectory(prefix="syncd-verify-") as tmp:
        for ref in referenced:
            if ref.name not in stored:
                check.problems.append(f"{archive.source}/{ref.name} is missing")
                continue
            try:
                archive.fetch(ref, Path(tmp, "object"))
            except SyncdError as e:
                check.problems.append(str(e))
    names = {ref.name for ref in referenced}
    check.unreferenced = sorted(set(stored) - names)
    return check

