"""The local state dir: where each version is persisted before any upload.

    <state>/sources/<name>/mirror.db        the mirror at the latest version
    <state>/sources/<name>/archive/         a local archive, laid out like any target
    <state>/sources/<name>/targets/*.json   per-target cursors: the version each target has, and
                                            the daemon's last failure and next retry for it
    <state>/sources/<name>/staging/         the replica: a private copy of the phone's database
    <state>/sources/<name>/lock             held while a pass runs
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import SyncdError
from .fsutil import atomic_write


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "syncd"


class SourceState:
    def __init__(self, state_dir: Path, name: str):
        self.root = Path(state_dir).expanduser().absolute() / "sources" / name
        self.mirror_path = self.root / "mirror.db"
        self.archive_dir = self.root / "archive"
        self.staging = self.root / "staging"
        self.cursors = self.root / "targets"

    @contextmanager
    def locked(self):
        """Hold the source's lock, so two passes (a daemon and a manual sync) never interleave."""
        try:
            for folder in (self.root, self.archive_dir, self.cursors):
                folder.mkdir(parents=True, exist_ok=True)
            lock = open(self.root / "lock", "a+")
        except OSError as e:
            raise SyncdError(f"state dir {self.root} can't be used: {e.strerror}",
                             hint="pass a writable folder with --state") from None
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SyncdError(f"another syncd is working on {self.root}",
                                 hint="wait for it to finish (is the daemon running?)") from None
            yield

    def _cursor_path(self, location: str) -> Path:
        return self.cursors / (hashlib.sha256(location.encode()).hexdigest()[:16] + ".json")

    def cursor(self, location: str) -> dict | None:
        """What this target was last known to hold: {"location", "version", "hash"}."""
        data = self.delivery(location)
        # A target that has only ever failed has a record but no cursor.
        return data if "hash" in data else None

    def delivery(self, location: str) -> dict:
        """The whole record: the cursor plus "error", "failures", "failed_at", "next_retry" after a failure."""
        try:
            return json.loads(self._cursor_path(location).read_text())
        except FileNotFoundError:
            return {}

    def set_cursor(self, location: str, version: int, head_hash: str) -> None:
        """Record a delivery; it also clears the failure fields."""
        data = {"location": location, "version": version, "hash": head_hash}
        atomic_write(self._cursor_path(location), json.dumps(data).encode())

    def record_failure(self, location: str, error: str, failures: int, failed_at: str, next_retry: str) -> None:
        """Keep the cursor and note why the last delivery failed and when the daemon tries again."""
        data = self.delivery(location) | {"location": location, "error": error, "failures": failures,
                                          "failed_at": failed_at, "next_retry": next_retry}
        atomic_write(self._cursor_path(location), json.dumps(data).encode())
