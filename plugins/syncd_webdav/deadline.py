"""An overall deadline for every WebDAV request, counted over all its reads and writes.

httpx's timeouts are per read: a server that sends one byte every 20 s never trips
them, in the headers or in the body, and would hold a pass forever. httpcore's
network stream is the one place every read and write of a request passes, so the
deadline lives there: each read or write may wait only until the operation's
deadline (`syncd.backend.deadline_for` of the bytes it has moved so far), and past
it fails as an httpx timeout. Imported only when a WebDAV target is opened.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpcore
import httpx

from syncd import backend as seam

# Writes go out in pieces this size, so a server that drains slowly meets the deadline
# between pieces rather than after a whole upload chunk.
WRITE_PIECE = 16 << 10


class Deadline(threading.local):
    """The current thread's operation: when it started and the bytes it has moved."""

    def __init__(self):
        self.started: float | None = None
        self.moved = 0

    @contextmanager
    def running(self) -> Iterator[None]:
        self.started, self.moved = time.monotonic(), 0
        try:
            yield
        finally:
            self.started = None

    def wait(self, timeout: float | None, error: type[Exception]) -> float | None:
        """How long the next read or write may wait: its own timeout, cut to the time left."""
        if self.started is None:
            return timeout
        left = self.started + seam.deadline_for(self.moved) - time.monotonic()
        if left <= 0:
            raise error("the request's overall deadline passed")
        return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline):
        self.inner, self.deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self.inner.read(max_bytes, self.deadline.wait(timeout, httpcore.ReadTimeout))
        self.deadline.moved += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), WRITE_PIECE):
            piece = buffer[start:start + WRITE_PIECE]
            self.inner.write(piece, self.deadline.wait(timeout, httpcore.WriteTimeout))
            self.deadline.moved += len(piece)

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> DeadlineStream:
        wait = self.deadline.wait(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self.inner.start_tls(ssl_context, server_hostname, wait), self.deadline)

    def get_extra_info(self, info: str):
        return self.inner.get_extra_info(info)


class DeadlineNetwork(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, deadline: Deadline):
        self.inner, self.deadline = inner, deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        wait = self.deadline.wait(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self.inner.connect_tcp(host, port, wait, local_address, socket_options), self.deadline)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        wait = self.deadline.wait(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self.inner.connect_unix_socket(path, wait, socket_options), self.deadline)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def install(client: httpx.Client, deadline: Deadline) -> None:
    """Route every connection `client` makes (proxies included) through `deadline`.

    httpx doesn't expose httpcore's network backend, so this reaches it through the
    transports' pools; tests/test_bounded_reads.py fails if that ever stops working.
    """
    for transport in (client._transport, *client._mounts.values()):
        if transport is not None:
            pool = transport._pool
            pool._network_backend = DeadlineNetwork(pool._network_backend, deadline)
