"""Loggers that import `logging` on first use.

Importing `logging` costs a few milliseconds, about a tenth of what issue 11 allows a pass with
nothing new beyond `syncd --version`, and such a pass logs nothing. `get_logger(name)` stands in
for `logging.getLogger(name)` in modules on that path; the logger it stands for is the same one, so
handlers, levels and pytest's caplog see no difference.
"""

from __future__ import annotations


class LazyLogger:
    """`logging.getLogger(name)`, fetched when a method of it is first called."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attr: str):
        import logging

        return getattr(logging.getLogger(self.name), attr)


def get_logger(name: str) -> LazyLogger:
    return LazyLogger(name)
