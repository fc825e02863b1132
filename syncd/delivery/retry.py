"""The one retry policy: each operation retried within a pass, each failing target later on.

`RetryingBackend` is a Backend around another Backend that tries transient failures
again within one pass; `target_backoff` is how long a target that failed a whole
delivery waits before the next one (the daemon keeps the failure count beside the
target's cursor, so a restart goes on from there). Both wait twice as long after each
failure, up to a cap.

Backends only classify their errors (see `syncd.errors`); when and how often to
try again is decided here, once, for all of them (restic's backend wrappers do the
same). A `PermanentError` is never retried: wrong credentials must give one clear
error, not a storm of failed logins that may lock the account.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from ..backend import Backend, ObjectInfo
from ..errors import TransientError
from ..log import get_logger

# Tries per operation, the first one included.
RETRY_ATTEMPTS = 5
# The delay before the n-th retry is drawn from [0, min(MAX, BASE * 2**n)]
# ("full jitter"), so many clients that failed together don't retry together.
RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 30.0

log = get_logger(__name__)
T = TypeVar("T")


def doubling(n: int, first: float, cap: float) -> float:
    """`first`, doubled `n` times, at most `cap`."""
    return min(cap, first * 2 ** n)


def backoff_delay(retry: int, rng: Callable[[float, float], float] | None = None) -> float:
    """Seconds to wait before retry number `retry` (0 for the first retry); `rng` defaults to random.uniform."""
    if rng is None:
        import random  # only a failure waits: a pass that goes well doesn't import it

        rng = random.uniform
    return rng(0.0, doubling(retry, RETRY_BASE_DELAY, RETRY_MAX_DELAY))


def target_backoff(failures: int, retry_min: float, retry_max: float) -> float:
    """Seconds a target waits after its `failures`-th failed delivery in a row (no jitter:
    one daemon, and its targets fail apart)."""
    return doubling(max(0, failures - 1), retry_min, retry_max)


class RetryingBackend:
    """Retries each operation of `inner` on `TransientError`, with exponential backoff and jitter."""

    def __init__(self, inner: Backend, *, attempts: int | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.inner = inner
        self.schemes = inner.schemes
        self.location = inner.location
        self.attempts = attempts or RETRY_ATTEMPTS
        self.sleep = sleep

    @classmethod
    def from_url(cls, url: str) -> Backend:
        raise TypeError("RetryingBackend wraps a backend; build the backend with open_backend first")

    def __repr__(self) -> str:
        return f"RetryingBackend({self.inner!r})"

    def _retry(self, what: str, call: Callable[[], T], rewind: Callable[[], None] | None = None) -> T:
        for attempt in range(self.attempts):
            try:
                return call()
            except TransientError as e:
                if attempt + 1 == self.attempts:
                    raise
                delay = backoff_delay(attempt)
                log.warning("%s: %s failed (%s); try %d of %d in %.1f s",
                            self.location, what, e, attempt + 2, self.attempts, delay)
                self.sleep(delay)
                if rewind:
                    rewind()
        raise AssertionError("unreachable")

    def list(self, prefix: str) -> list[ObjectInfo]:
        return self._retry(f"listing {prefix!r}", lambda: self.inner.list(prefix))

    def open(self, name: str, limit: int | None = None) -> BinaryIO:
        return self._retry(f"reading {name}", lambda: self.inner.open(name, limit=limit))

    def write(self, name: str, data: BinaryIO) -> None:
        if not data.seekable():
            # A stream that can't be rewound can be sent once only.
            return self.inner.write(name, data)
        start = data.tell()
        self._retry(f"writing {name}", lambda: self.inner.write(name, data), rewind=lambda: data.seek(start))

    @property
    def create(self) -> Callable[[str, BinaryIO], None]:
        """The inner backend's exclusive create, retried; an AttributeError (so `getattr(…, None)`
        finds none) where it has none. A retry that finds its own earlier try done raises
        AlreadyExists, which the caller resolves by reading the object (see syncd.archive.claims)."""
        inner = self.inner.create

        def create(name: str, data: BinaryIO) -> None:
            start = data.tell()
            self._retry(f"creating {name}", lambda: inner(name, data), rewind=lambda: data.seek(start))

        return create

    @property
    def link(self) -> Callable[[str, object, str], bool]:
        """The inner backend's `link`, retried; an AttributeError where it has none (as `create`)."""
        inner = self.inner.link

        def link(name: str, source: object, source_name: str) -> bool:
            return self._retry(f"linking {name}", lambda: inner(name, source, source_name))

        return link

    def delete(self, name: str) -> None:
        self._retry(f"deleting {name}", lambda: self.inner.delete(name))

    def close(self) -> None:
        self.inner.close()
