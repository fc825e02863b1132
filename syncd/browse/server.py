"""Serving the browser: cheroot (BSD-3, the CherryPy project's threaded WSGI server) on a loopback port.

cheroot rather than a hand-rolled or development server: it is kept, production-grade,
pure Python, and already what the tests' WebDAV server runs on. It binds before the URL
is printed (port 0 picks a free port, and the printed URL names it), and stops on
SIGINT or SIGTERM; the caller's `with` removes the restored versions afterwards.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Callable

from cheroot import wsgi

from ..errors import UsageError
from .app import Browser, TokenGate
from .shelf import Shelf

THREADS = 4  # a person's browser opens a few connections at once; reads are serialized by the shelf
# cheroot reads a request line and headers of any length by default (0: no limit): a client sending a
# line without end would grow the server's memory until it stopped. Every route is a GET with a short
# query (cursors, queries and versions are cut far below this), so a few KiB more than that is plenty.
MAX_REQUEST_HEADERS = 64 << 10
MAX_REQUEST_BODY = 1 << 10  # no route reads a body; a longer one (a POST) is refused before it is read


class _Stop(SystemExit):
    """SIGINT or SIGTERM arrived. A SystemExit because cheroot's loop lets only those (and
    KeyboardInterrupt) out; stopping from inside the handler would wait on the loop it interrupted."""


def serve(shelf: Shelf, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve `shelf` on host:port until SIGINT/SIGTERM; `announce(url)` once listening (the URL holds the token)."""
    token = secrets.token_urlsafe(32)
    server = wsgi.Server((host, port), None, numthreads=THREADS, server_name="syncd")
    server.max_request_header_size, server.max_request_body_size = MAX_REQUEST_HEADERS, MAX_REQUEST_BODY
    try:
        server.prepare()
    except OSError as e:
        raise UsageError(f"can't listen on {host}:{port}: {e.strerror or e}",
                         hint="pick another --port, or 0 for any free one") from None
    bound_port = server.bind_addr[1]
    # The cookie is named per port: cookies ignore ports, and two browse servers must not share one.
    server.wsgi_app = TokenGate(Browser(shelf), token, f"syncd-browse-{bound_port}")
    shown = f"[{host}]" if ":" in host else host
    announce(f"http://{shown}:{bound_port}/?token={token}")

    def stop(signum, frame):
        raise _Stop(0)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve()
    except _Stop:
        pass  # asked to stop: stop below, then the caller removes the restored versions
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
