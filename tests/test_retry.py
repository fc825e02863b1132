"""The retry wrapper: transient failures are tried again with growing, jittered delays; permanent ones never."""

from __future__ import annotations

import io

import pytest

from syncd.delivery import retry
from syncd.errors import NotFound, PermanentError, TransientError
from syncd.delivery.retry import RetryingBackend, backoff_delay
from syncd.testing import MemoryBackend


class Flaky(MemoryBackend):
    """A memory backend whose next `failures` calls fail with the given error."""

    def __init__(self, name, failures=0, error=TransientError):
        super().__init__(name)
        self.failures, self.error, self.calls = failures, error, 0

    def _maybe_fail(self):
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise self.error(f"{self.location}: injected failure")

    def list(self, prefix):
        self._maybe_fail()
        return super().list(prefix)

    def write(self, name, data):
        data.read(3)  # a failure midway has consumed part of the stream
        self._maybe_fail()
        data.seek(-3, io.SEEK_CUR)
        return super().write(name, data)


@pytest.fixture
def sleeps():
    return []


def wrap(inner, sleeps, attempts=5):
    return RetryingBackend(inner, attempts=attempts, sleep=sleeps.append)


def test_transient_failures_are_retried_until_success(sleeps):
    flaky = Flaky("retry-1", failures=3)
    assert wrap(flaky, sleeps).list("") == []
    assert flaky.calls == 4 and len(sleeps) == 3


def test_gives_up_after_the_last_attempt(sleeps):
    flaky = Flaky("retry-2", failures=10)
    with pytest.raises(TransientError, match="injected"):
        wrap(flaky, sleeps, attempts=4).list("")
    assert flaky.calls == 4 and len(sleeps) == 3


@pytest.mark.parametrize("error", [PermanentError, NotFound])
def test_permanent_failures_are_never_retried(sleeps, error):
    flaky = Flaky("retry-3", failures=1, error=error)
    with pytest.raises(error):
        wrap(flaky, sleeps).list("")
    assert flaky.calls == 1 and sleeps == []


def test_a_retried_write_sends_the_whole_stream_again(sleeps):
    flaky = Flaky("retry-4", failures=2)
    data = io.BytesIO(b"skip:the whole object")
    data.seek(5)
    wrap(flaky, sleeps).write("o", data)
    with flaky.open("o") as f:
        assert f.read() == b"the whole object"


def test_backoff_grows_exponentially_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_BASE_DELAY", 0.5)
    monkeypatch.setattr(retry, "RETRY_MAX_DELAY", 30.0)
    upper = [backoff_delay(n, rng=lambda low, high: high) for n in range(10)]
    assert upper[:4] == [0.5, 1.0, 2.0, 4.0] and upper[-1] == 30.0
    assert all(backoff_delay(n, rng=lambda low, high: low) == 0.0 for n in range(10))


def test_jitter_spreads_the_delays(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_BASE_DELAY", 0.5)
    delays = {round(backoff_delay(3), 6) for _ in range(20)}
    assert len(delays) > 10 and all(0 <= d <= 4.0 for d in delays)
