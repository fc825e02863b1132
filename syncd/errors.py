"""The errors syncd raises, and what each one tells the user.

    SyncdError                    anything syncd reports as one line plus a hint
    ├── UsageError                the command asks for something impossible (exit 2)
    │   ├── KeyProblem            an age identity or recipient can't be used (missing, wrong, damaged, exposed)
    │   └── UnusableTarget        a target URL (or its options) no storage plugin can use; a PermanentError too
    ├── SourceError               the phone's database can't be archived (exit 2)
    ├── TargetError               a storage target failed
    │   ├── TransientError        may succeed if tried again (network, timeouts, 5xx)
    │   └── PermanentError        won't succeed until someone acts (missing, full, denied)
    │       ├── NotFound          an object or folder that should exist does not
    │       ├── AlreadyExists     an exclusive create found the name taken
    │       └── TooLarge          an object is longer than its reader allows (damaged, or hostile)
    └── ArchiveError              an archive's content is wrong or not what was asked
        └── CorruptObject         an object doesn't match its recorded hash or can't be decoded

Library exceptions (OSError, apsw, zstd, pyrage) are mapped to these at one boundary per
module; nothing else reaches the CLI, which prints `error: <message>` and the hint.
Messages never include secrets.
"""

from __future__ import annotations

import errno

import apsw


class SyncdError(Exception):
    """Base class: a problem with a one-line message and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class UsageError(SyncdError):
    """Options that contradict each other, or a value that can't be used (a source name)."""

    exit_code = 2


class KeyProblem(UsageError):
    """An identity or recipient is missing, wrong, damaged or readable by others; never names the key."""


class SourceError(SyncdError):
    """The source database is missing, unreadable, not SQLite, truncated or encrypted."""

    exit_code = 2


class TargetError(SyncdError):
    """A storage target could not be read or written."""


class TransientError(TargetError):
    """A target failure that may go away on its own; worth retrying."""


class PermanentError(TargetError):
    """A target failure that retrying won't fix."""


class NotFound(PermanentError):
    """A named object (or the target's folder) does not exist."""


class AlreadyExists(PermanentError):
    """An exclusive create (`Backend.create`) found an object under that name already."""


class TooLarge(PermanentError):
    """An object is longer than its reader allows: a damaged target, or a hostile one."""


class ArchiveError(SyncdError):
    """An archive is inconsistent, or lacks what was asked for (a version, a source)."""


class CorruptObject(ArchiveError):
    """An object's bytes don't match the manifest, or don't decode."""


class UnusableTarget(UsageError, PermanentError):
    """A target URL or its options can't be used: bad input (exit 2), and a target that retrying won't fix."""


# A full disk, a full quota, and a file size limit (RLIMIT_FSIZE) all mean "no room to write".
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_space(error: BaseException, folder: object) -> SyncdError | None:
    """`error` as one line if it means there is no room left to write in `folder`, else None."""
    if isinstance(error, apsw.FullError) or (isinstance(error, OSError) and error.errno in FULL_ERRNOS):
        return SyncdError(f"no space left to write in {folder}",
                          hint="free some space there (or choose another folder), then run it again")
    return None
