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
    <state>/sources/<name>/error.json       why the source could last not be archived, until it can again
    <state>/kinds/<kind>-<id>/              a source kind's private work folder for one path it opened
                                            (an encrypted backup's decrypted Manifest.db and databases)
    <state>/writer-id                       this state dir's random id: which writer claims a source on a target

All of it is private whatever the umask (folders 0700, files 0600): the mirror and the
replica are the chat history in the clear. A state dir made by an older syncd is
tightened, with one warning, when a pass takes the lock; so is what a killed pass left
behind (its scratch folders, half-written files) swept.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import SyncdError
from ..fsutil import PRIVATE_DIR, PRIVATE_FILE, atomic_write, fsync_dir, private_dirs, private_opener, sweep_temps
from ..log import get_logger

WRITTEN, WRITING, UPLOADED = "written", "writing", "uploaded"
WRITER_ID = "writer-id"
WRITER_ID_HEX = 32
SCRATCH_PREFIX = "tmp"  # tempfile.TemporaryDirectory(dir=<state>/sources/<name>) of a pass
SCRATCH_SUFFIX = ".stored"  # Archive.store's encoded copy, when its scratch is the source's folder

log = get_logger(__name__)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "syncd"


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def known_sources(state_dir: Path) -> list[str]:
    """The sources a state dir has worked on."""
    root = Path(state_dir).expanduser() / "sources"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def kind_workdir(state_dir: Path, path: Path, kind: str) -> Path:
    """The private folder where `kind` may keep what it decrypts of the source at `path`
    (made by the kind, with syncd.fsutil.private_dirs, when it needs one)."""
    digest = hashlib.sha256(str(Path(path).expanduser().absolute()).encode()).hexdigest()[:16]
    return Path(state_dir).expanduser() / "kinds" / f"{kind}-{digest}"


def writer_id(state_dir: Path) -> str:
    """This state dir's stable random id, made on first use (0600): the writer that claims sources on targets."""
    path = Path(state_dir).expanduser() / WRITER_ID
    if not path.exists():
        # Written whole, then linked into place (which never replaces): deliveries run at once,
        # and each must read the one id, never a file another is still writing.
        import secrets, tempfile  # noqa: E401 (once per state dir: not worth their import in every pass)

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
    with open(path) as f:
        text = f.read(WRITER_ID_HEX + 2).strip()
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
        self.error_path = self.root / "error.json"

    @contextmanager
    def locked(self):
        """Hold the source's lock, so two passes (a daemon and a manual sync) never interleave."""
        try:
            for folder in (self.root, self.archive_dir, self.cursors):
                private_dirs(folder)
            self._tighten()
            lock = open(self.root / "lock", "a+", opener=private_opener)
        except OSError as e:
            raise SyncdError(f"state dir {self.root} can't be used: {e.strerror}",
                             hint="pass a writable folder with --state") from None
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SyncdError(f"another syncd is working on {self.root}",
                                 hint="wait for it to finish (is the daemon running?)") from None
            self._sweep()
            yield

    @property
    def state_dir(self) -> Path:
        return self.root.parent.parent

    def delivered_keys(self) -> list[str]:
        """The cursor keys of every target this source was delivered to (plain: the location; sealed: `location#folder`)."""
        return [record["location"] for record in self.deliveries() if "hash" in record]

    def _tighten(self) -> None:
        """Make an older syncd's state private: it made folders and the mirror by the umask
        (0755, 0644 under the usual 022). Only the top levels are looked at: a 0700 folder
        keeps every path below it from other users, whatever their modes."""
        loose = []
        for path in [self.root.parent, self.root, *_entries(self.root), *_entries(self.staging)]:
            try:
                mode = path.lstat().st_mode
                if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
                    continue
                os.chmod(path, PRIVATE_DIR if stat.S_ISDIR(mode) else PRIVATE_FILE)
                loose.append(path)
            except FileNotFoundError:
                pass
        if loose:
            log.warning("%s was readable by other local users (%d entries): made it private (0700/0600)",
                        self.root, len(loose))

    def _sweep(self) -> None:
        """Remove what a killed pass left: scratch folders and half-written files. Every writer of
        a source's state holds its lock, so with the lock held nothing of theirs is in use.

        The local archive is left to its folder backend, which sweeps each folder it writes to
        (listing `objects/` on every pass would cost 25 ms per 10,000 versions)."""
        for entry in _entries(self.root):
            if entry.name.startswith(SCRATCH_PREFIX) and entry.is_dir() and not entry.is_symlink():
                import shutil  # only after a killed pass

                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.endswith(SCRATCH_SUFFIX) and entry.is_file():
                entry.unlink(missing_ok=True)
        for folder in (self.root, self.staging, self.cursors):
            sweep_temps(folder)

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

    def deliveries(self) -> list[dict]:
        """The record of every target this state dir has delivered to (or tried), by location."""
        # `<key>.json` only: the `<key>.written.json` and the like are an encrypted target's own.
        paths = [p for p in self.cursors.glob("*.json") if len(p.suffixes) == 1] if self.cursors.is_dir() else []
        return sorted((json.loads(p.read_text()) for p in paths), key=lambda record: record.get("location", ""))

    def set_cursor(self, location: str, version: int, head_hash: str, media: str | None = None) -> None:
        """Record a delivery (and the media listing it carried); it also clears the failure fields."""
        data = {"location": location, "version": version, "hash": head_hash} | ({"media": media} if media else {})
        atomic_write(self._cursor_path(location), json.dumps(data).encode())

    def record_failure(self, location: str, error: str, failures: int, failed_at: str,
                       next_retry: str | None) -> None:
        """Keep the cursor and note why the last delivery failed and when the daemon tries again
        (None: at the next pass)."""
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

    def media_key_path(self, key: str) -> Path:
        """Where the key naming an encrypted target's media objects is kept (syncd.delivery.media)."""
        return self._written_path(key, "media-key")

    def sealed_uploads(self, key: str) -> dict[str, dict]:
        """Objects uploaded since the last manifest write: "<version>-<kind>-<plain sha256>" → its ref."""
        try:
            return json.loads(self._written_path(key, UPLOADED).read_text())
        except FileNotFoundError:
            return {}

    def record_sealed_upload(self, key: str, uploads: dict[str, dict]) -> None:
        atomic_write(self._written_path(key, UPLOADED), json.dumps(uploads).encode())

    # A source that can't be archived (a half-copied drop, a file gone) fails before any
    # target is tried, so no cursor records it: its last error is kept apart, for `status`.

    def record_source_error(self, error: str, hint: str | None) -> None:
        data = {"error": error, "hint": hint, "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        private_dirs(self.error_path.parent)  # a kind may refuse a source (no key) before its first pass
        atomic_write(self.error_path, json.dumps(data, ensure_ascii=False).encode())

    def source_error(self) -> dict | None:
        """{"error", "hint", "failed_at"} of the last pass, if it could not archive the source."""
        try:
            return json.loads(self.error_path.read_text())
        except FileNotFoundError:
            return None

    def clear_source_error(self) -> None:
        self.error_path.unlink(missing_ok=True)
