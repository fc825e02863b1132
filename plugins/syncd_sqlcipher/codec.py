"""Decrypt a SQLCipher file into a plain SQLite file, and back, through the `sqlcipher3` library.

Both run on one connection holding the encrypted database as `main` (keyed with `PRAGMA key`, then
the cipher settings) and the plain one attached with an empty key; `transfer` copies between them.
The output is written under a temporary name and renamed when whole, so a failure leaves nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlcipher3

from syncd.errors import KeyProblem, SourceError, no_space
from syncd.fsutil import fsync_dir, fsync_file

from .cipher import CipherSettings, key_pragma
from .transfer import copy_database, copy_layout, pragma

KEY_HINT = "check the key file, and the source's cipher settings (compatibility, page_size, kdf_iter…)"
_quiet = False


def _connect(path: Path):
    global _quiet
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    if not _quiet:  # SQLCipher logs each failed page to stderr: a wrong key is reported once, by us
        conn.execute("PRAGMA cipher_log_level = NONE")
        _quiet = True
    return conn


def _keyed(path: Path, key: str, settings: CipherSettings):
    conn = _connect(path)
    conn.execute(key_pragma(key, settings.key_form))
    for statement in settings.pragmas():
        conn.execute(statement)
    return conn


def decrypt(encrypted: Path, out: Path, key: str, settings: CipherSettings, what: Path) -> None:
    """Write the plain database in `encrypted` (a private copy; its -wal beside it) to `out`.

    `what` is the user's file, named in errors. A wrong key is a KeyProblem; a file whose
    first page opens but whose rest doesn't read is a SourceError (damaged).
    """
    tmp = _fresh(out)
    conn = _keyed(encrypted, key, settings)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise KeyProblem(f"{what} can't be decrypted with this key and {settings.describe()} "
                         "(or it is not a SQLCipher database)", hint=KEY_HINT) from None
    _copy(conn, tmp, tmp, "main", "plain", ("page_size", "auto_vacuum"), what)
    _settle(tmp, out)


def encrypt(plain: Path, out: Path, key: str, settings: CipherSettings) -> None:
    """Write the plain database `plain` to `out` encrypted with `key` and `settings`, as the app keeps it."""
    tmp = _fresh(out)
    conn = _keyed(tmp, key, settings)
    _copy(conn, tmp, plain, "plain", "main", ("auto_vacuum",), plain)  # the page size is the cipher's
    _settle(tmp, out)


def _fresh(out: Path) -> Path:
    """A new private temporary file beside `out`: private before SQLite writes a byte to it."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return tmp


def _copy(conn, tmp: Path, plain: Path, src: str, dst: str, layout: tuple[str, ...], what: Path) -> None:
    """Attach the plain file `plain` to `conn` as "plain", copy schema `src` into `dst` and close;
    `tmp` (the output) is removed on failure."""
    try:
        conn.execute("ATTACH DATABASE ? AS plain KEY ''", (str(plain),))
        copy_layout(conn, src, dst, layout)
        conn.execute("BEGIN")
        copy_database(conn, src, dst)
        conn.execute("COMMIT")
        if pragma(conn, src, "journal_mode") == "wal":
            conn.execute(f"PRAGMA {dst}.journal_mode = WAL")
        conn.execute("DETACH DATABASE plain")
    except sqlcipher3.Error as e:
        tmp.unlink(missing_ok=True)
        raise _mapped(e, what, tmp.parent) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        conn.close()


def _settle(tmp: Path, out: Path) -> None:
    fsync_file(tmp)
    os.replace(tmp, out)
    fsync_dir(out.parent)


def _mapped(error: Exception, what: Path, folder: Path) -> Exception:
    full = no_space(error, folder) if isinstance(error, OSError) else None
    if full is None and "full" in str(error).lower():
        full = no_space(OSError(28, "No space left on device"), folder)
    return full or SourceError(f"{what} is damaged: {error}", hint="copy it from the device again")
