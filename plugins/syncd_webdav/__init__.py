"""WebDAV targets: `webdav://user@host[:port]/path` (HTTP) and `webdavs://…` (HTTPS).

Nextcloud/ownCloud, Synology/QNAP, Apache mod_dav, `rclone serve webdav`, WsgiDAV,
and alist in front of the Chinese cloud drives all speak it.

Credentials: the password comes from `~/.netrc` (or the file `$NETRC` names), by
host and login, never from the URL: a URL lands in shell history, process lists
and logs. Nothing here puts the password in a message, a log line or an exception.

Writes are atomic the portable way: PUT to a dot-name beside the object, then
MOVE it over the final name with `Overwrite: T`. Listings skip dot-names, so an
interrupted upload is never seen. Listing walks with `Depth: 1`, because many
servers refuse `Depth: infinity`.

Nothing a server sends is read without bound: every request has an overall
deadline (see `deadline`), a GET stops at the reader's limit, a listing at
LISTING_MAX_BYTES, and other answers are read only as far as SMALL_BODY.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from syncd.backend import ObjectInfo, too_large
from syncd.errors import AlreadyExists, NotFound, PermanentError, TargetError, TransientError
from syncd.plugins import hookimpl

if TYPE_CHECKING:
    import httpx

REQUEST_TIMEOUT = 30.0  # seconds without progress before a request counts as failed
CONNECT_TIMEOUT = 10.0
UPLOAD_CHUNK = 1 << 20
DOWNLOAD_SPOOL = 8 << 20  # larger downloads go to a temporary file, not memory
# A PROPFIND answer is parsed whole. A folder of 100,000 versions' objects lists in about
# 40 MiB (some 400 bytes an entry); an endless answer stops here.
LISTING_MAX_BYTES = 128 << 20
# What is read of answers whose body syncd doesn't need (PUT, MOVE, MKCOL, DELETE):
# enough to keep the connection for the next request, no more.
SMALL_BODY = 64 << 10
TEMP_PREFIX = ".syncd-upload-"
DAV = "{DAV:}"
PROPFIND_BODY = (b'<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop>'
                 b"<d:resourcetype/><d:getcontentlength/></d:prop></d:propfind>")


def netrc_credentials(host: str, user: str | None) -> tuple[str, str] | None:
    """(login, password) for `host` from `$NETRC` or `~/.netrc`, if it has an entry for that login."""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.is_file():
        return None
    import netrc  # here, like the XML parser below: every syncd command loads this plugin

    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError) as e:
        # NetrcParseError's text quotes the offending line, which may hold a password.
        raise PermanentError(f"can't read {path} (line {getattr(e, 'lineno', '?')})",
                             hint="check its syntax: machine HOST login USER password PASSWORD") from None
    if entry is None:
        return None
    login, _, password = entry
    if user and login != user:
        return None
    return login, password or ""


class WebDAVBackend:
    """Objects as files below a WebDAV collection."""

    schemes = ("webdav", "webdavs")
    syntax = ("webdav://user@host[:port]/path", "webdavs://user@host[:port]/path")

    def __init__(self, base_url: str, location: str, auth: tuple[str, str] | None):
        self.base = base_url.rstrip("/") + "/"
        self.location = location
        self._made: set[str] = set()  # collections known to exist
        import httpx  # here, not at the top: every syncd command loads every plugin module

        from . import deadline

        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT)
        self.client = httpx.Client(auth=httpx.BasicAuth(*auth) if auth else None, timeout=timeout,
                                   follow_redirects=False)
        self.deadline = deadline.Deadline()
        deadline.install(self.client, self.deadline)

    def __repr__(self) -> str:
        return f"WebDAVBackend({self.location!r})"

    @classmethod
    def from_url(cls, url: str, password: str | None = None) -> WebDAVBackend:
        """`password` comes from the config file's [[target]] options; otherwise from ~/.netrc."""
        parts = urlsplit(url)
        if parts.password is not None:
            raise PermanentError("a WebDAV URL must not hold a password",
                                 hint=f"put it in ~/.netrc: machine {parts.hostname} login {parts.username} "
                                      "password …, and use webdav://USER@HOST/path")
        if not parts.hostname:
            raise PermanentError(f"{parts.scheme} URL without a host", hint="use webdav://user@host[:port]/path")
        http = "https" if parts.scheme == "webdavs" else "http"
        port = f":{parts.port}" if parts.port else ""
        path = quote(unquote(parts.path.rstrip("/")))
        user = unquote(parts.username) if parts.username else None
        location = f"{parts.scheme}://{quote(user) + '@' if user else ''}{parts.hostname}{port}{path}"
        if password is not None and not user:
            raise PermanentError("a WebDAV password needs a user", hint="use webdav://USER@HOST/path")
        auth = (user, password) if password is not None else netrc_credentials(parts.hostname, user)
        return cls(f"{http}://{parts.hostname}{port}{path}/", location, auth)

    # -- HTTP, with every failure mapped in one place -------------------------

    def _url(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"invalid object name {name!r}")
        return self.base + quote(name)

    def _request(self, method: str, name: str, ok: tuple[int, ...], **kwargs) -> int:
        return self._send(method, self._url(name), name or "/", ok, **kwargs)

    def _send(self, method: str, url: str, name: str, ok: tuple[int, ...], *, body: BinaryIO | None = None,
              limit: int | None = None, **kwargs) -> int:
        """One request, within its deadline; its status. The answer's body goes into `body`,
        up to `limit` bytes (TooLarge past it); without `body`, it is read only if short."""
        import httpx

        what = f"{self.location}: {method} {name}"
        try:
            with self.deadline.running(), self.client.stream(method, url, **kwargs) as response:
                if response.status_code not in ok:
                    _drain(response)  # a short error page read keeps the connection for the next request
                    raise _status_error(response.status_code, what)
                if body is None:
                    _drain(response)
                    return response.status_code
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise too_large(f"{self.location}: {name}", limit)
                    body.write(chunk)
                return response.status_code
        except httpx.TimeoutException:
            raise TransientError(f"{what} timed out", hint="is the server overloaded or the network slow?") from None
        except (httpx.TransportError, OSError) as e:
            # str(e) of a transport error names the host and the OS error, never the auth header.
            raise TransientError(f"{what} failed: {type(e).__name__}: {e}", hint="is the server up and reachable?") \
                from None

    # -- the Backend protocol -------------------------------------------------

    def list(self, prefix: str) -> list[ObjectInfo]:
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        found: list[ObjectInfo] = []
        pending = [folder]
        while pending:  # Depth: 1 per collection, because servers may refuse Depth: infinity
            current = pending.pop()
            for name, is_dir, size in self._propfind(current):
                if name.rsplit("/", 1)[-1].startswith("."):
                    continue  # uploads in progress, and the server's own dot-files
                if is_dir:
                    if (name + "/").startswith(prefix) or prefix.startswith(name + "/"):
                        pending.append(name + "/")
                elif name.startswith(prefix):
                    found.append(ObjectInfo(name, size))
        return sorted(found, key=lambda info: info.name)

    def _propfind(self, folder: str) -> list[tuple[str, bool, int]]:
        try:
            body = io.BytesIO()
            self._request("PROPFIND", folder, (207,), body=body, limit=LISTING_MAX_BYTES, content=PROPFIND_BODY,
                          headers={"Depth": "1", "Content-Type": "application/xml"})
        except NotFound:
            return []
        import xml.etree.ElementTree as ET

        base_path = urlsplit(self.base).path
        entries = []
        for item in ET.fromstring(body.getvalue()).iter(f"{DAV}response"):
            path = unquote(urlsplit(item.findtext(f"{DAV}href", "")).path)
            if not path.startswith(unquote(base_path)):
                continue
            name = path[len(unquote(base_path)):].rstrip("/")
            if not name or name + "/" == folder:
                continue  # the collection itself
            is_dir = item.find(f".//{DAV}resourcetype/{DAV}collection") is not None
            size = item.findtext(f".//{DAV}getcontentlength") or "0"
            entries.append((name, is_dir, int(size)))
        return entries

    def open(self, name: str, limit: int | None = None) -> BinaryIO:
        import tempfile

        spool = tempfile.SpooledTemporaryFile(DOWNLOAD_SPOOL)
        try:
            self._request("GET", name, (200,), body=spool, limit=limit)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def write(self, name: str, data: BinaryIO, overwrite: str = "T") -> None:
        folder, _, leaf = name.rpartition("/")
        self._make_collection(self._url(folder + "/") if folder else self.base)
        temp = f"{folder}/{TEMP_PREFIX}{uuid.uuid4().hex}-{leaf}" if folder else f"{TEMP_PREFIX}{uuid.uuid4().hex}-{leaf}"
        self._request("PUT", temp, (200, 201, 204), content=_chunks(data), headers=_length_of(data))
        try:
            moved = self._request("MOVE", temp, (201, 204, 412),
                                  headers={"Destination": self._url(name), "Overwrite": overwrite})
            if moved == 412:
                raise AlreadyExists(f"{self.location}: {name} already exists")
        except BaseException:
            try:
                self._request("DELETE", temp, (200, 204, 404))
            except TargetError:
                pass  # a leftover dot-file is invisible to list(); the original error matters more
            raise

    def create(self, name: str, data: BinaryIO) -> None:
        """Write `name` only if it is free: MOVE with `Overwrite: F` answers 412 for a taken name
        (RFC 4918 §9.9.3; WsgiDAV and rclone serve webdav honour it, and ignore `If-None-Match: *` on PUT)."""
        self.write(name, data, overwrite="F")

    def _make_collection(self, url: str) -> None:
        """MKCOL `url`, making missing parents first: a 409 says one is missing, the base path included."""
        if url in self._made:
            return
        # 405: it exists already.
        if self._send("MKCOL", url, url.removeprefix(self.base) or "/", (201, 405, 409)) == 409:
            parent = url.rstrip("/").rsplit("/", 1)[0] + "/"
            if urlsplit(parent).path in ("", "/"):
                raise PermanentError(f"{self.location}: the server refuses to create folders here (HTTP 409)")
            self._make_collection(parent)
            self._send("MKCOL", url, url.removeprefix(self.base) or "/", (201, 405))
        self._made.add(url)

    def delete(self, name: str) -> None:
        self._request("DELETE", name, (200, 204, 404))

    def close(self) -> None:
        self.client.close()


def _drain(response: httpx.Response) -> None:
    """Read a body syncd doesn't need if it is short (the connection stays usable); else leave it."""
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > SMALL_BODY:
            break  # closing the response unread drops the connection, and the rest with it


def _chunks(data: BinaryIO):
    while chunk := data.read(UPLOAD_CHUNK):
        yield chunk


def _length_of(data: BinaryIO) -> dict[str, str]:
    """A Content-Length when the size is known: some servers (older Nextcloud, nginx setups) refuse chunked PUTs."""
    if not data.seekable():
        return {}
    here = data.tell()
    size = data.seek(0, os.SEEK_END) - here
    data.seek(here)
    return {"Content-Length": str(size)}


def _status_error(status: int, what: str) -> TargetError:
    """The one place an HTTP status becomes a syncd error."""
    if status == 404:
        return NotFound(f"{what}: not found")
    if status in (401, 403):
        return PermanentError(f"{what}: authentication failed (HTTP {status})",
                              hint="check the login in the URL and its password in ~/.netrc")
    if status == 507:
        return PermanentError(f"{what}: the server is out of space (HTTP 507)",
                              hint="free space or raise the quota; the version stays queued locally")
    if status in (408, 425, 429) or status >= 500:
        return TransientError(f"{what}: server error (HTTP {status})", hint="the server may be busy or restarting")
    if status in (301, 302, 307, 308):
        return PermanentError(f"{what}: redirected (HTTP {status})", hint="use the URL the server redirects to "
                              "(webdavs:// for HTTPS?)")
    return PermanentError(f"{what}: unexpected HTTP {status}")


@hookimpl
def register_backends():
    return [WebDAVBackend]
