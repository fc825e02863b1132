"""The local state dir: where each version is persisted before any upload.

    <state>/sources/<name>/mirror.db        the mirror at the latest version
    <state>/sources/<name>/archive/         a local archive, laid out like any target
    <state>/sources/<name>/targets/*.json   per-target cursors: the version each target has, and
                                            the daemon's last failure and next retry for it
    <state>/sources/<name>/targets/*.written.json  for an encrypted target: the manifest last written
                                            there, in the clear, and the digest of its encrypted form
                                            (*.writing.json while writing, *.uploaded.json: objects sent since)
    <state>/sources/<name>/staging/         the replica: a private copy of the phone's database
    <state>/sources/<name>/lock             held while a pass runs
    <state>/writer-id                       this state dir's random id: which writer claims a source on a target
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import SyncdError
from .fsutil import atomic_write, fsync_dir

WRITTEN, WRITING, UPLOADED = "written", "writing", "uploaded"
WRITER_ID = "writer-id"
WRITER_ID_HEX = 32


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "syncd"


def known_sources(state_dir: Path) -> list[str]:
    """The sources a state dir has worked on."""
    root = Path(state_dir).expanduser() / "sources"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def writer_id(state_dir: Path) -> str:
    """This state dir's stable random id, made on first use (0600): the writer that claims sources on targets."""
    path = Path(state_dir).expanduser() / WRITER_ID
    if not path.exists():
        # Written whole, then linked into place (which never replaces): deliveries run at once,
        # and each must read the one id, never a file another is still writing.
        fd, tmp = tempfile.mkstemp(prefix=f".{WRITER_ID}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(WRITER_ID_HEX // 2) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            pass  # another made it first: theirs is the id
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
    text = path.read_text().strip()
    if len(text) != WRITER_ID_HEX or text.strip("0123456789abcdef"):
        raise SyncdError(f"{path} is damaged", hint="restore it from a backup of the state dir; deleting "
                         "it makes this state dir a new writer, refused on targets it wrote to")
    return text


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

    @property
    def state_dir(self) -> Path:
        return self.root.parent.parent

    def delivered_keys(self) -> list[str]:
        """The cursor keys of every target this source was delivered to (plain: the location; sealed: `location#folder`)."""
        keys = []
        for path in sorted(self.cursors.glob("*.json")):
            if "." not in path.stem:  # not a *.written.json and the like
                data = json.loads(path.read_text())
                if "hash" in data:
                    keys.append(data["location"])
        return keys

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

    # An encrypted target can't be read back without the identity, which the sync
    # side never has: it keeps what it wrote there. `writing` is recorded before the
    # remote write and becomes `written` after it, so a crash in between is
    # recognised on the next pass instead of looking like a replaced target.

    def _written_path(self, key: str, stage: str) -> Path:
        return self._cursor_path(key).with_suffix(f".{stage}.json")

    def sealed_records(self, key: str) -> dict[str, dict]:
        """{"written": …, "writing": …} as far as present; each {"sha256", "size", "manifest"}."""
        found = {}
        for stage in (WRITTEN, WRITING):
            try:
                found[stage] = json.loads(self._written_path(key, stage).read_text())
            except FileNotFoundError:
                pass
        return found

    def record_sealed(self, key: str, stage: str, sha256: str, size: int, manifest: dict) -> None:
        data = {"location": key, "sha256": sha256, "size": size, "manifest": manifest}
        atomic_write(self._written_path(key, stage), json.dumps(data, ensure_ascii=False).encode())

    def settle_sealed(self, key: str) -> None:
        """The remote write of the `writing` manifest went through: it is now the `written` one."""
        os.replace(self._written_path(key, WRITING), self._written_path(key, WRITTEN))
        self._written_path(key, UPLOADED).unlink(missing_ok=True)
        fsync_dir(self.cursors)

    # Encrypting is not repeatable (every run gives other bytes), so objects a failed
    # pass already uploaded are remembered, and the next pass uses them instead of
    # sending a 100 MB base again.

    def sealed_uploads(self, key: str) -> dict[str, dict]:
        """Objects uploaded since the last manifest write: "<version>-<kind>-<plain sha256>" → its ref."""
        try:
            return json.loads(self._written_path(key, UPLOADED).read_text())
        except FileNotFoundError:
            return {}

    def record_sealed_upload(self, key: str, uploads: dict[str, dict]) -> None:
        atomic_write(self._written_path(key, UPLOADED), json.dumps(uploads).encode())
