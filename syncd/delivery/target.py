"""A storage target as `sync` takes it: its URL, and the recipients to encrypt to, if any."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyrage import x25519


@dataclass(frozen=True)
class Target:
    """Where to deliver, and to whom it must be readable (nobody else, when `encrypt_to` is set).

    The CLI's `--to … --encrypt-to …` and a config file's `encrypt_to = [...]` both
    build one; a bad recipient fails here, before a pass starts.
    """

    url: str
    encrypt_to: tuple[str, ...] = ()
    _recipients: tuple[x25519.Recipient, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self):
        object.__setattr__(self, "encrypt_to", tuple(self.encrypt_to))
        if self.encrypt_to:
            from ..archive.crypto import parse_recipients  # only an encrypted target pays for loading age

            object.__setattr__(self, "_recipients", tuple(parse_recipients(self.encrypt_to)))

    @property
    def encrypted(self) -> bool:
        return bool(self.encrypt_to)

    def recipients(self) -> list[x25519.Recipient]:
        return list(self._recipients)


def as_target(target: str | Target) -> Target:
    return target if isinstance(target, Target) else Target(target)
