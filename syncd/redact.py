"""Secrets out of everything syncd shows: one rule for every target URL.

A target URL can carry a secret in three places:

    webdav://me:SECRET@host/path                     a password in the URL
    https://host/path?token=SECRET                   a query parameter named like a secret
    rclone::webdav,url=…,user=me,pass=SECRET:path    a parameter of a connection string

`redact_url` shows each as `***`. Config check, status, verify, logs, errors and the
`location` in cursor files all show URLs through it (a backend's `location` is built
with it). Connection strings (rclone's `NAME,key=value,…:path`) are parsed here, by
`read_remote`, for both the plugin that runs them and for redacting them, so the
two can never disagree about where a secret ends.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote

from .errors import UsageError

MASK = "***"
# Parameter names whose values are never shown (matched anywhere in the name, any case).
SECRET_NAME = re.compile(r"pass|pwd|secret|key|token|session|credential|auth|sas|sig|bearer|cookie|private",
                         re.IGNORECASE)
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# A password in a URL's user part (up to the last @ of the host part) and secret-looking
# query parameters; quotes and commas end both, since URLs sit quoted in connection strings.
USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/?#:@\s'\",]*):([^/?#\s'\",]*)@")
QUERY = re.compile(r"([?&;])([^=&#;\s'\",]+)=([^&#;\s'\",]*)")
KEY = re.compile(r"[A-Za-z0-9_-]+")
# An unquoted value may start with a URL: its `scheme://host:port` keeps its colons
# (`url=http://127.0.0.1:8080`); any later colon ends the remote, as in rclone.
URL_HEAD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/,:@'\"\s]*(?::[^/,@'\"\s]*)?@)?[^/,:'\"\s]*(?::\d+)?")


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Remote(NamedTuple):
    """A parsed `NAME,key=value,…` (a remote defined on the fly is named `:TYPE`)."""

    name: str
    params: dict[str, str]  # values unquoted; a bare `key` means "true", as in rclone
    shown: str  # as written, with every secret as ***
    secrets: tuple[str, ...]  # to scrub from text that may echo them (a tool's error message)

    @property
    def on_the_fly(self) -> bool:
        return self.name.startswith(":")


def read_remote(text: str) -> tuple[Remote, str | None]:
    """Parse `NAME,key=value,…` up to the colon that ends it; also return what follows
    that colon (the path), or None when there is none.

    Values may be quoted with ' or " (a doubled quote stands for itself); an unquoted
    value ends at `,` or `:`, except for the colons of a leading `scheme://host:port`.
    """
    at = 1 if text.startswith(":") else 0
    while at < len(text) and text[at] not in ",:":
        at += 1
    name, shown, params, secrets = text[:at], [text[:at]], {}, []
    while at < len(text) and text[at] == ",":
        key = KEY.match(text, at + 1)
        if not key:
            raise _unreadable(at + 1, "a parameter name (letters, digits, _ and -)")
        at = key.end()
        if at < len(text) and text[at] == "=":
            value, end = _value(text, at + 1)
        else:
            value, end = "true", at
        raw = text[at + 1:end] if end > at else ""
        params[key.group()] = value
        if is_secret(key.group()) and end > at:
            secrets.append(value)
            shown.append(f",{key.group()}={MASK}")
        else:
            url_secrets = _url_secrets(value)
            secrets += url_secrets
            shown.append(f",{key.group()}" + (f"={_redact_urls(raw)}" if end > at else ""))
        at = end
    if at < len(text) and text[at] != ":":
        raise _unreadable(at, "',' or ':' after a value (quote values holding them)")
    path = text[at + 1:] if at < len(text) else None
    return Remote(name, params, "".join(shown), tuple(s for s in secrets if s)), path


def _value(text: str, at: int) -> tuple[str, int]:
    """The value starting at `at`, unquoted, and where it ends."""
    if at < len(text) and text[at] in "'\"":
        quote, parts, at = text[at], [], at + 1
        while True:
            end = text.find(quote, at)
            if end < 0:
                raise _unreadable(at - 1, f"a closing {quote}")
            parts.append(text[at:end])
            if text.startswith(quote * 2, end):
                parts.append(quote)
                at = end + 2
                continue
            return "".join(parts), end + 1
    head = URL_HEAD.match(text, at)
    end = head.end() if head else at
    while end < len(text) and text[end] not in ",:":
        end += 1
    return text[at:end], end


def _unreadable(at: int, expected: str) -> UsageError:
    # The position, never the text: it may hold a secret.
    return UsageError(f"can't read the connection string: expected {expected} at character {at + 1}",
                      hint="quote values holding , or : like this: key='value'")


def _redact_urls(text: str) -> str:
    text = USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    return QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if is_secret(m.group(2)) else m.group(0), text)


def _url_secrets(text: str) -> list[str]:
    return [m.group(2) for m in USERINFO.finditer(text)] + \
           [m.group(3) for m in QUERY.finditer(text) if is_secret(m.group(2))]


def redact_url(url: str) -> str:
    """The target URL as it may be shown: every secret in it replaced by ***."""
    scheme, colon, rest = url.partition(":")
    if not colon or not SCHEME.fullmatch(scheme) or rest.startswith("//"):
        return _redact_urls(url)  # a URL, or a folder path (which has nothing to hide)
    try:
        remote, path = read_remote(rest)
    except UsageError:
        return f"{scheme}:{MASK}"  # can't tell where a secret ends: show none of it
    return f"{scheme}:{remote.shown}" + (f":{path}" if path is not None else "")


def url_secrets(url: str) -> list[str]:
    """The secrets `redact_url` hides in `url`, to scrub them from other text."""
    scheme, colon, rest = url.partition(":")
    if colon and SCHEME.fullmatch(scheme) and not rest.startswith("//"):
        try:
            return list(read_remote(rest)[0].secrets)
        except UsageError:
            return []
    return [s for s in _url_secrets(url) if s]


def scrub(text: str, secrets) -> str:
    """`text` with every occurrence of each secret, as is or URL-encoded, replaced by ***."""
    forms = {form for secret in secrets if secret for form in (secret, quote(secret), quote(secret, safe=""))}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
