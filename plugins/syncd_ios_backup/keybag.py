"""An encrypted backup's keybag: from the password to the protection-class keys.

Manifest.plist's `BackupKeyBag` is a run of TLV records (4-byte tag, 4-byte
big-endian length, value). The records before the second `UUID` describe the
bag (salts, iteration counts); each later `UUID` starts one protection class
(`CLAS`, `WRAP`, `KTYP`, `WPKY`: the class key, wrapped). The password becomes
the key that unwraps the class keys through PBKDF2-HMAC-SHA256 (`DPSL`, `DPIC`:
10,000,000 rounds on iOS 10.2 and later) and then PBKDF2-HMAC-SHA1 (`SALT`,
`ITER`); the unwrap is RFC 3394 AES key wrap, whose integrity check is what
tells a wrong password. Facts from the public format notes (iphone-dataprotection,
jsharkey13/iphone_backup_decrypt's README); the code is ours, on `cryptography`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


from syncd.errors import KeyProblem, SourceError

KEYBAG_MAX_BYTES = 64 << 10
MAX_RECORDS = 1024
MAX_CLASSES = 64
# Bounds on what the bag may ask of us: real bags ask 10 M and 10 k; a hostile one asking
# billions would hold the CPU for days.
MAX_SHA256_ROUNDS = 50_000_000
MAX_SHA1_ROUNDS = 10_000_000
DERIVED_KEY_BYTES = 32
WRAPPED_KEY_BYTES = 40
WRAP_BY_PASSWORD = 2  # WRAP flag: the class key is wrapped with the password-derived key
DAMAGED = "the backup may be damaged; make a new one"


@dataclass
class Keybag:
    """A parsed BackupKeyBag: the bag's own attributes and each class's wrapped key."""

    attributes: dict[bytes, bytes | int] = field(default_factory=dict)
    wrapped: dict[int, bytes] = field(default_factory=dict)  # class → WPKY, for classes wrapped by password


def parse_keybag(data: bytes) -> Keybag:
    """Parse the TLV records; a SourceError if they overrun, repeat oddly or have odd sizes."""
    if len(data) > KEYBAG_MAX_BYTES:
        raise SourceError("the backup's keybag is implausibly large", hint=DAMAGED)
    bag, current, records, at = Keybag(), None, 0, 0
    while at < len(data):
        records += 1
        if at + 8 > len(data) or records > MAX_RECORDS:
            raise SourceError("the backup's keybag is truncated or too long", hint=DAMAGED)
        tag, length = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "big")
        if length > len(data) - at - 8:
            raise SourceError("a keybag record runs past the keybag's end", hint=DAMAGED)
        value: bytes | int = data[at + 8:at + 8 + length]
        at += 8 + length
        if length == 4:
            value = int.from_bytes(value, "big")
        if tag == b"UUID" and b"UUID" in bag.attributes:  # every UUID after the bag's own starts a class
            if current is not None:
                _close_class(bag, current)
            current = {}
        elif current is None:
            bag.attributes.setdefault(tag, value)
        else:
            current[tag] = value
    if current is not None:
        _close_class(bag, current)
    if len(bag.wrapped) > MAX_CLASSES:
        raise SourceError("the backup's keybag has too many classes", hint=DAMAGED)
    return bag


def _close_class(bag: Keybag, record: dict) -> None:
    """Note a class once it has its number, flags and wrapped key."""
    clas, wrap, wpky = record.get(b"CLAS"), record.get(b"WRAP"), record.get(b"WPKY")
    if not (isinstance(clas, int) and isinstance(wrap, int) and isinstance(wpky, bytes)):
        return
    if len(wpky) != WRAPPED_KEY_BYTES or not 0 <= clas < MAX_CLASSES:
        raise SourceError(f"keybag class {clas} has a malformed key", hint=DAMAGED)
    if wrap & WRAP_BY_PASSWORD:
        bag.wrapped[clas] = wpky


def _rounds(bag: Keybag, tag: bytes, maximum: int) -> int:
    value = bag.attributes.get(tag)
    if not isinstance(value, int) or not 1 <= value <= maximum:
        raise SourceError(f"the backup's keybag asks for {value!r} {tag.decode()} rounds", hint=DAMAGED)
    return value


def _salt(bag: Keybag, tag: bytes) -> bytes:
    value = bag.attributes.get(tag)
    if not isinstance(value, bytes) or not 4 <= len(value) <= 256:
        raise SourceError(f"the backup's keybag has no usable {tag.decode()} salt", hint=DAMAGED)
    return value


def password_key(bag: Keybag, password: str) -> bytes:
    """The key the password makes: the slow part (seconds), done once per kind object."""
    secret = password.encode("utf-8")
    if b"DPSL" in bag.attributes:  # iOS 10.2 and later add the SHA-256 round in front
        secret = hashlib.pbkdf2_hmac("sha256", secret, _salt(bag, b"DPSL"), _rounds(bag, b"DPIC", MAX_SHA256_ROUNDS),
                                     DERIVED_KEY_BYTES)
    return hashlib.pbkdf2_hmac("sha1", secret, _salt(bag, b"SALT"), _rounds(bag, b"ITER", MAX_SHA1_ROUNDS),
                               DERIVED_KEY_BYTES)


def class_keys(bag: Keybag, password: str) -> dict[int, bytes]:
    """Every password-wrapped class key, unwrapped; KeyProblem if the password is wrong."""
    if not bag.wrapped:
        raise SourceError("the backup's keybag holds no class keys", hint=DAMAGED)
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap  # on use: see unwrap_file_key

    kek = password_key(bag, password)
    keys = {}
    for clas, wrapped in bag.wrapped.items():
        try:
            keys[clas] = aes_key_unwrap(kek, wrapped)
        except InvalidUnwrap:
            raise KeyProblem("the backup password is wrong (its keybag does not open)",
                             hint="check the password file: one line, the password set in Finder or iTunes") from None
    return keys


def unwrap_file_key(keys: dict[int, bytes], protection_class: int, wrapped: bytes, what: str) -> bytes:
    """A file's own AES-256 key, unwrapped by its protection class's key."""
    if protection_class not in keys:
        raise SourceError(f"{what} is protected by class {protection_class}, which the keybag lacks", hint=DAMAGED)
    # Imported where a key is unwrapped: every syncd command loads this plugin, few decrypt.
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

    try:
        key = aes_key_unwrap(keys[protection_class], wrapped)
    except (InvalidUnwrap, ValueError):
        raise SourceError(f"{what}'s key does not unwrap", hint=DAMAGED) from None
    if len(key) != DERIVED_KEY_BYTES:
        raise SourceError(f"{what}'s key is not an AES-256 key", hint=DAMAGED)
    return key
