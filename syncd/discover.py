"""Finding the chat databases and iOS backups on this machine, for `syncd sources`.

Each source kind names the places its sources usually are (`places(home)`: macOS
Messages, WhatsApp Desktop, Signal Desktop, Finder and iTunes backup folders); this
looks at each, says whether it can be read, and why not. Nothing is opened beyond
what `recognises` reads, and nothing is written.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pluggy

from .fsutil import read_head
from .plugins import recognised_by, source_kinds

# macOS keeps ~/Library/Messages, Mail and Safari data behind Full Disk Access (TCC): even the
# owner's own processes get EPERM there until the app running them is granted it.
FULL_DISK_ACCESS_HINT = ("grant Full Disk Access to the app running syncd (your terminal, or the "
                         "service) in System Settings → Privacy & Security → Full Disk Access")


@dataclass(frozen=True)
class Found:
    path: Path
    kind: str
    name: str
    app: str | None
    readable: bool
    problem: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "name": self.name, "app": self.app,
                "readable": self.readable, "problem": self.problem, "hint": self.hint}


def discover(pm: pluggy.PluginManager, home: Path | None = None) -> list[Found]:
    """The sources each kind's usual places hold under `home` (default: the user's home)."""
    home = Path(home or Path.home())
    found = []
    for cls in source_kinds(pm):
        places = getattr(cls, "places", None)
        for place in places(home) if places else []:
            if os.path.lexists(place.path):
                found.append(_look(cls, place))
    return found


def _look(cls, place) -> Found:
    """Whether `place` can be read, and is what its kind expects."""
    try:
        if place.path.is_dir():
            os.listdir(place.path)
        else:
            read_head(place.path, 1)
    except PermissionError:
        hint = FULL_DISK_ACCESS_HINT if sys.platform == "darwin" and "Library" in place.path.parts else \
            f"check the permissions of {place.path}"
        return Found(place.path, cls.kind, place.name, place.app, False, "permission denied", hint)
    except OSError as e:
        return Found(place.path, cls.kind, place.name, place.app, False, e.strerror or str(e))
    if not recognised_by(cls, place.path):
        return Found(place.path, cls.kind, place.name, place.app, False, f"not a {cls.kind} source",
                     "it may be empty, or from an app version syncd doesn't know")
    return Found(place.path, cls.kind, place.name, place.app, True)
