"""The source seam: what turns what a user points at into plain SQLite databases.

A person holds an iOS backup folder, a SQLCipher file, a WhatsApp `.crypt15`, or
a plain database. A *source kind* (from a plugin, like storage backends; see
`syncd.plugins`) recognises its own kind of path and yields the plain SQLite
databases in it, each archived as a source of its own by the one pipeline
(snapshot → detect → mirror → archive → deliver).

Contract (`syncd.testing.SourceKindContract` checks it):
- `recognises(path)` is cheap (it reads a few KiB at most), needs no key and
  never writes; several kinds may recognise a path, and the first in
  `priority` order wins unless the user names one with `--kind`.
- `kind(path, options, workdir)` only remembers what it is given; `databases()`
  lists what the path holds now, cheaply, each `Database` with a `signature`
  that changes whenever its content may have. A database whose signature is
  as last archived is not read at all.
- `materialise(db)` returns the plain SQLite file to read: the phone's own file
  where it is plain (read, never written), or one it decrypted into `workdir`,
  a folder of the private state dir the pipeline gives it (made, when needed,
  with `syncd.fsutil.private_dirs`: 0700). Nothing decrypted goes anywhere else.
- `media(db)`, where a kind has it, lists the database's media files with a
  mark each; `SourceMedia.open` gives one's plain bytes (decrypted into
  `workdir` if need be, gone once closed).
- Nothing is ever written into the user's folder: no journal, no lock, no
  changed access time.
- Keys and passwords come from `options` (files checked to be private); they
  appear in no message, log or file. A wrong key is a `SourceError` naming the
  file, never the key.
- A kind object lives as long as the daemon does: what is slow to derive from
  a password (an iOS backup's 10 M PBKDF2 rounds) is derived once, in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar, NamedTuple, Protocol, runtime_checkable

from .errors import KeyProblem

SECRET_MAX_BYTES = 4096
# Group or other may not read (or write) a key file.
LOOSE_BITS = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True)
class Database:
    """One plain SQLite database a source holds."""

    name: str  # a stable source name: letters, digits, '.', '_', '-' (e.g. "anns-iphone.whatsapp")
    signature: str  # changes whenever the content may have (sizes, times, a backup's own record)
    app: str | None = None  # whose schema it is, when the kind knows: "wechat", "whatsapp", "imessage"…
    # The plain file, when it can be read in place; None when `materialise` must make it.
    path: Path | None = None
    # Its companions where they are not beside it under the usual names: "-wal" → file.
    companions: Mapping[str, Path] = field(default_factory=dict)
    # What restore needs to give the app its file back (kind, cipher settings; never a key):
    # recorded with each version, handed to the kind's `write_back`.
    origin: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceMedia:
    """One media file a source holds for a database, as its kind lists it (see `SourceKind.media`)."""

    path: str  # relative, `/`-separated, as the app keeps it: "Library/SMS/Attachments/0a/10/…/IMG_1.heic"
    size: int  # its plain bytes
    mtime_ns: int
    # Changes whenever the bytes may have (an iOS backup's own record of the file): an unchanged
    # mark means the file is not read again. A 63-bit number, so a scan stores it compactly.
    mark: int
    # Its plain bytes, as a readable binary stream the caller closes (decrypted, where the kind
    # must, into its private workdir, and removed there when closed).
    open: Callable[[], BinaryIO] = field(compare=False, repr=False)


@dataclass(frozen=True)
class SourceOptions:
    """What the user gave with the path: key and password files, and a kind's own settings."""

    key_file: Path | None = None
    password_file: Path | None = None
    name: str | None = None  # the user's name for the source (a prefix when it holds several)
    settings: Mapping[str, str] = field(default_factory=dict)  # e.g. imei and uin for WeChat

    def key(self) -> str:
        """The one line of the key file (a SQLCipher key, WeChat's 7 characters, 64 hex digits)."""
        if self.key_file is None:
            raise KeyProblem("this source needs a key", hint="give --key-file FILE (one line, mode 0600)")
        return read_secret_file(self.key_file, "key file")

    def password(self) -> str:
        """The one line of the password file (an encrypted iOS backup's password)."""
        if self.password_file is None:
            raise KeyProblem("this backup is encrypted and needs its password",
                             hint="give --password-file FILE (one line, mode 0600)")
        return read_secret_file(self.password_file, "password file")


class Place(NamedTuple):
    """Where a kind's source usually is on a machine (for `syncd sources`)."""

    path: Path
    name: str  # a source name to suggest: "imessage-mac", "signal-desktop"
    app: str | None = None


@runtime_checkable
class SourceKind(Protocol):
    """A kind of source: recognises its paths, lists their databases, and makes them readable."""

    kind: ClassVar[str]  # what `--kind` and `kind = …` name: "sqlite", "ios-backup", "sqlcipher"…
    summary: ClassVar[str]  # one line for `syncd plugins`
    # Lower is asked first: specific formats before the plain-file fallback.
    priority: ClassVar[int]

    @classmethod
    def recognises(cls, path: Path) -> bool: ...

    def databases(self) -> list[Database]: ...

    def materialise(self, db: Database) -> Path: ...

    def close(self) -> None: ...

    # Optional: `places(home)`, a classmethod listing the `Place`s under the home folder `home`
    # where this kind's sources usually are (on macOS, Linux or Windows); `syncd sources` looks there.
    # Optional: `watched()`, the files whose change means the source may have (the daemon's quiet
    # period waits for them to hold still); by default the path and its -wal and -journal.
    # Optional: `media(db)`, the `SourceMedia` files the source holds for database `db` (an iOS
    # backup's attachments of that app), listed cheaply from the source's own records: syncd
    # stores them with the database's `--media` folders, reading only those whose mark changed.
    # A list, or an iterator in path order, which syncd streams through without holding it.
    # Optional: `write_back(plain, out, origin, options)`, a classmethod that writes the plain
    # database `plain` to `out` as the app keeps it (re-encrypted with the key in `options`),
    # for `syncd restore --key-file`: migration back into the app.


def media_mark(*parts: object) -> int:
    """A `SourceMedia.mark` from what a kind knows of a file without reading it (its record)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") >> 1


def source_name_for(path: Path) -> str:
    """A source is named after its file unless told otherwise: `EnMicroMsg.db`, `ChatStorage.sqlite`."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", Path(path).name).lstrip(".-_")[:128] or "source"


def stat_signature(*paths: Path) -> str:
    """A signature of files by what changes whenever one is written, replaced or removed:
    inode, size, mtime and ctime of each (null for one that is missing)."""
    marks = []
    for path in paths:
        try:
            st = os.stat(path)
            marks.append([st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        except OSError:
            marks.append(None)
    return json.dumps(marks)


def read_secret_file(path: Path, what: str) -> str:
    """The first line of a private file, stripped; a KeyProblem (without the secret) otherwise."""
    path = Path(path).expanduser()
    check_private(path, what)
    try:
        with open(path, "rb") as f:
            raw = f.read(SECRET_MAX_BYTES + 1)
    except OSError as e:
        raise KeyProblem(f"can't read {what} {path}: {e.strerror}", hint="check the path") from None
    try:
        lines = raw[:SECRET_MAX_BYTES].decode("utf-8").splitlines()
    except UnicodeDecodeError:
        lines = []
    secret = lines[0].strip() if lines else ""
    if len(raw) > SECRET_MAX_BYTES or not secret:
        raise KeyProblem(f"{what} {path} does not hold one line of text", hint="write the key alone on one line")
    return secret


def check_private(path: Path, what: str) -> None:
    """Refuse a secret file others may read: it would leak the archive's key to every local user."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeyProblem(f"{what} {path} does not exist", hint="check the path") from None
    except OSError as e:
        raise KeyProblem(f"can't read {what} {path}: {e.strerror}", hint="check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyProblem(f"{what} {path} is not a file", hint="check the path")
    if st.st_mode & LOOSE_BITS:
        raise KeyProblem(f"{what} {path} can be read by others (mode {stat.S_IMODE(st.st_mode):o})",
                         hint=f"chmod 600 {path}")
