"""A WsgiDAV server for the tests, run as its own process so a test can kill it mid-upload.

    python dav_server.py ROOT PORT USER PASSWORD

In front of WsgiDAV sits a small fault injector, steered over HTTP without auth:
`POST /_fault?status=500&count=2&methods=PUT` answers the next two PUTs with 500,
`status=timeout&delay=3` stalls them instead, `status=truncate` stores only the first half
of a PUT's body and answers as if all arrived; `GET /_stats` returns the count of
each response status so far, and `POST /_stats` resets it.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import parse_qs

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp


class FaultInjector:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.status, self.count, self.methods, self.delay = None, 0, set(), 0.0
        self.stats: Counter = Counter()

    def _reply(self, start_response, status: str, body: bytes = b""):
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ, start_response):
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/_fault":
            q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
            with self.lock:
                self.status, self.count = q.get("status"), int(q.get("count", "1000000"))
                self.methods = set(filter(None, q.get("methods", "").split(",")))
                self.delay = float(q.get("delay", "0"))
            return self._reply(start_response, "200 OK")
        if path == "/_stats":
            with self.lock:
                body = json.dumps(self.stats).encode()
                if method == "POST":
                    self.stats.clear()
            return self._reply(start_response, "200 OK", body)
        with self.lock:
            fault = self.status if self.count > 0 and (not self.methods or method in self.methods) else None
            if fault:
                self.count -= 1
        if fault:
            self._count(fault)  # counted now: a stalled request's client has gone before it ends
        if fault == "truncate":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body[: len(body) // 2]), str(len(body) // 2)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            return self.app(environ, start_response)
        if fault == "timeout":
            time.sleep(self.delay)
            fault = "503"
        if fault:
            return self._reply(start_response, f"{fault} Injected")

        def counting(status, headers, exc_info=None):
            self._count(status.split()[0])
            return start_response(status, headers, exc_info)

        return self.app(environ, counting)

    def _count(self, status: str):
        with self.lock:
            self.stats[status] += 1


def make_app(root: str, user: str, password: str):
    config = {
        "provider_mapping": {"/": root},
        "simple_dc": {"user_mapping": {"*": {user: {"password": password}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "verbose": 0,
        "logging": {"enable": False, "enable_loggers": []},
        "lock_storage": True,
        "property_manager": True,
    }
    return FaultInjector(WsgiDAVApp(config))


def main():
    root, port, user, password = sys.argv[1:5]
    server = wsgi.Server(("127.0.0.1", int(port)), make_app(root, user, password), numthreads=8)
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
