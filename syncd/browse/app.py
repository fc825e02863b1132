"""The WSGI app: read-only routes over a Shelf, behind a token gate.

Werkzeug (BSD-3) does the HTTP parts we must not get wrong by hand: routing, query
parsing, cookies, responses. Every route is a GET (HEAD too); anything else is 405, so
nothing a page (or another site) sends can change state. Each response carries a strict
Content-Security-Policy: no script at all, styles only from /style.css, nothing from
another origin, no framing.

The gate works as Jupyter's: the URL printed at start holds a random token; a request
with it gets a cookie (HttpOnly, SameSite=Strict) and is redirected to the same page
without it, so the token leaves the address bar and history; every request with neither
token nor cookie is refused with 403.
"""

from __future__ import annotations

import hmac
from pathlib import PurePosixPath
from urllib.parse import quote, urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from ..errors import SyncdError, UsageError
from . import pages
from .find import MAX_QUERY, find
from .shelf import Shelf
from .timeline import Cursor, page_after, page_before

POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
          "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
MAX_VERSION_DIGITS = 9
# Media shown in the page rather than downloaded: types a browser renders without running anything.
INLINE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
                ".webp": "image/webp", ".heic": "image/heic", ".mp4": "video/mp4", ".mov": "video/quicktime",
                ".m4a": "audio/mp4", ".mp3": "audio/mpeg", ".opus": "audio/ogg", ".caf": "audio/x-caf"}

ROUTES = Map([
    Rule("/", endpoint="sources", methods=["GET"]),
    Rule("/style.css", endpoint="style", methods=["GET"]),
    Rule("/s/<source>/", endpoint="conversations", methods=["GET"]),
    Rule("/s/<source>/chat", endpoint="chat", methods=["GET"]),
    Rule("/s/<source>/search", endpoint="search", methods=["GET"]),
    Rule("/s/<source>/media/<int:number>/<path:path>", endpoint="media", methods=["GET"]),
], strict_slashes=True)


class Browser:
    """The browsing app (WSGI callable) over `shelf`."""

    def __init__(self, shelf: Shelf):
        self.shelf = shelf

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            endpoint, args = ROUTES.bind_to_environ(environ).match()
            response = getattr(self, endpoint)(request, **args)
        except MethodNotAllowed:
            response = _html(pages.error_page(405, "this view is read-only"), 405)
            response.headers["Allow"] = "GET, HEAD"
        except NotFound:
            response = _html(pages.error_page(404, "no such page"), 404)
        except HTTPException as e:
            response = _html(pages.error_page(e.code or 400, e.name), e.code or 400)
        except SyncdError as e:
            response = _html(pages.error_page(400 if e.exit_code == 2 else 500, str(e), e.hint),
                             400 if e.exit_code == 2 else 500)
        return response(environ, start_response)

    # -- routes ------------------------------------------------------------------------------

    def sources(self, request: Request) -> Response:
        with self.shelf.lock:
            rows = [(s, (self.shelf.versions(s) or (None,))[-1]) for s in self.shelf.sources]
        return _html(pages.sources_page(rows))

    def style(self, request: Request) -> Response:
        return Response(pages.CSS, mimetype="text/css", headers=HEADERS)

    def conversations(self, request: Request, source: str) -> Response:
        with self.shelf.lock:
            opened = self.shelf.open(source, _version(request))
            return _html(pages.conversations_page(opened, self.shelf.versions(source)))

    def chat(self, request: Request, source: str) -> Response:
        conversation = request.args.get("c")
        if not conversation:
            raise UsageError("which conversation? (the c parameter is missing)")
        with self.shelf.lock:
            opened = self.shelf.open(source, _version(request))
            if opened.reading.profile is None:
                raise NotFound()
            if "after" in request.args:
                page = page_after(opened, conversation, Cursor.parse(request.args["after"]))
            else:
                page = page_before(opened, conversation, Cursor.parse(request.args.get("before")))
            return _html(pages.chat_page(opened, self.shelf.versions(source), conversation, page))

    def search(self, request: Request, source: str) -> Response:
        query = request.args.get("q", "")[:MAX_QUERY]
        with self.shelf.lock:
            opened = self.shelf.open(source, _version(request))
            found = find(opened, query, self.shelf.search) if query.strip() else []
            return _html(pages.search_page(opened, self.shelf.versions(source), query, found))


    def media(self, request: Request, source: str, number: int, path: str) -> Response:
        """A message's media file as that version holds it (original bytes). Shown inline only as an
        image, a video or a sound of a type on the list; anything else is a download, never a page."""
        with self.shelf.lock:
            restored = self.shelf.media_file(source, number, path)
        if restored is None:
            raise NotFound()
        kind = INLINE_TYPES.get(PurePosixPath(path).suffix.lower())
        headers = dict(HEADERS)
        if kind is None:
            headers["Content-Disposition"] = "attachment"
        return Response(wrap_file(request.environ, restored), mimetype=kind or "application/octet-stream",
                        headers=headers, direct_passthrough=True)


def _version(request: Request) -> int | None:
    value = request.args.get("v")
    if not value:
        return None
    # isascii too: str.isdigit() also passes digits such as "²" that int() refuses.
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_VERSION_DIGITS:
        raise UsageError(f"{value[:20]!r} is not a version number")
    return int(value)


def _html(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/html", headers=HEADERS)


class TokenGate:
    """Lets a request through only with the token (in the URL once, then in a cookie); else 403."""

    def __init__(self, app, token: str, cookie: str):
        self.app, self.token, self.cookie = app, token, cookie

    def __call__(self, environ, start_response):
        request = Request(environ)
        offered = request.args.get("token")
        if offered is not None and hmac.compare_digest(offered.encode(), self.token.encode()):
            rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
            target = quote(request.path) + ("?" + urlencode(rest) if rest else "")
            response = Response("", status=303, headers={**HEADERS, "Location": target})
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            return response(environ, start_response)
        held = request.cookies.get(self.cookie, "")
        if held and hmac.compare_digest(held.encode(), self.token.encode()):
            return self.app(environ, start_response)
        refused = Response("403: open the URL syncd browse printed (it holds the token)\n", status=403,
                           mimetype="text/plain", headers=HEADERS)
        return refused(environ, start_response)
