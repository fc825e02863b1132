"""Logging for the daemon: plain lines on stderr (journald stamps them), repeated errors said once.

Messages come from SyncdError texts and backend locations, which by contract
hold no secrets; target URLs from the config go through `syncd.redact.redact_url` first.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

LOGGER = "syncd"


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """Log to stderr: with a timestamp in a terminal, without one under journald (it adds its own)."""
    logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    handler.setFormatter(logging.Formatter(stamp + "%(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger


class RepeatFilter:
    """Logs an error when it first happens, when it changes, and then at most once per `interval`.

    A target that stays down for a day should not write a line per retry.
    """

    def __init__(self, logger: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self.seen: dict[str, tuple[str, float, int]] = {}  # key -> (message, last logged, held back since)

    def error(self, key: str, message: str) -> None:
        now = self.clock()
        last = self.seen.get(key)
        if last and last[0] == message and now - last[1] < self.interval:
            self.seen[key] = (message, last[1], last[2] + 1)
            return
        repeats = f" (repeated {last[2]} more times)" if last and last[0] == message and last[2] else ""
        self.logger.error("%s%s", message, repeats)
        self.seen[key] = (message, now, 0)

    def resolved(self, key: str) -> bool:
        """Forget `key`'s error; True if there was one (so the caller can say it recovered)."""
        return self.seen.pop(key, None) is not None
