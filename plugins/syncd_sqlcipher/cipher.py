"""SQLCipher settings and keys: what the user says, what is recorded, and the pragmas they become.

Settings come from `options.settings` (the config's `[[source]]` table): `compatibility` "1".."4"
(SQLCipher's major versions' defaults), and explicit `page_size`, `kdf_iter`, `hmac` ("on"/"off"),
`hmac_algorithm` and `kdf_algorithm` on top. Every value is checked against a closed set before it
goes into a PRAGMA, and the key is quoted as a SQL string: nothing from outside is run as SQL.

A key is a passphrase (WeChat's 7 characters) or a raw key: 64 hex digits (Signal Desktop's), or
96 with the salt, or SQLCipher's own `x'…'` form; `key_form = "passphrase"` says a 64-hex line is a
passphrase after all. The form is recorded (never the key) so that write-back keys alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from syncd.errors import UsageError

KIND = "sqlcipher"
DEFAULT_COMPATIBILITY = {"wechat": "1", "signal": "4"}
COMPATIBILITIES = ("1", "2", "3", "4")
ALGORITHMS = {
    "hmac_algorithm": ("HMAC_SHA1", "HMAC_SHA256", "HMAC_SHA512"),
    "kdf_algorithm": ("PBKDF2_HMAC_SHA1", "PBKDF2_HMAC_SHA256", "PBKDF2_HMAC_SHA512"),
}
# setting → SQLCipher pragma
PRAGMAS = {"page_size": "cipher_page_size", "kdf_iter": "kdf_iter", "hmac": "cipher_use_hmac",
           "hmac_algorithm": "cipher_hmac_algorithm", "kdf_algorithm": "cipher_kdf_algorithm"}
MAX_KDF_ITER = 10_000_000
RAW_KEY = re.compile(r"(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{96})")
QUOTED_RAW_KEY = re.compile(r"x'((?:[0-9a-fA-F]{64}|[0-9a-fA-F]{96}))'")
# Newer Android versions give apps this IMEI; WeChat then derives its key from it (wechat-dump#70).
WECHAT_DEFAULT_IMEI = "1234567890ABCDEF"
WECHAT_KEY_LENGTH = 7
SETTINGS_HINT = ("settings: compatibility = \"1\"..\"4\", page_size, kdf_iter, hmac = \"on\"/\"off\", "
                 "hmac_algorithm, kdf_algorithm, key_form; imei and uin for WeChat")


@dataclass(frozen=True)
class CipherSettings:
    """How a SQLCipher file is encrypted (never the key)."""

    compatibility: str = "4"
    overrides: Mapping[str, str] = field(default_factory=dict)  # setting → checked value
    key_form: str = "passphrase"  # or "raw"

    def pragmas(self, schema: str = "main") -> list[str]:
        """The statements that apply these settings to `schema`, after its key."""
        found = [f"PRAGMA {schema}.cipher_compatibility = {int(self.compatibility)}"]
        found += [f"PRAGMA {schema}.{PRAGMAS[name]} = {value}" for name, value in sorted(self.overrides.items())]
        return found

    def origin(self, app: str | None) -> dict[str, str]:
        recorded = {"kind": KIND, "compatibility": self.compatibility, "key_form": self.key_form,
                    **self.overrides}
        if app:
            recorded["app"] = app
        return recorded

    def describe(self) -> str:
        extra = "".join(f", {name} {value}" for name, value in sorted(self.overrides.items()))
        return f"SQLCipher {self.compatibility} settings{extra}"


def settings_from(values: Mapping[str, str], app: str | None) -> CipherSettings:
    """Checked settings from the user's (or a recorded origin's) values."""
    compatibility = str(values.get("compatibility", DEFAULT_COMPATIBILITY.get(app or "", "4"))).strip()
    if compatibility not in COMPATIBILITIES:
        raise UsageError(f"SQLCipher compatibility {compatibility!r} is not one of 1, 2, 3, 4", hint=SETTINGS_HINT)
    overrides = {}
    for name in PRAGMAS:
        if name in values:
            overrides[name] = _checked(name, str(values[name]).strip())
    key_form = str(values.get("key_form", "")).strip()
    if key_form not in ("", "passphrase", "raw"):
        raise UsageError(f"key_form {key_form!r} is neither 'passphrase' nor 'raw'", hint=SETTINGS_HINT)
    return CipherSettings(compatibility, overrides, key_form or "passphrase")


def _checked(name: str, value: str) -> str:
    if name == "page_size":
        if not value.isdigit() or int(value) not in {512 << n for n in range(8)}:
            raise UsageError(f"SQLCipher page_size {value!r} is not a power of two from 512 to 65536",
                             hint=SETTINGS_HINT)
        return str(int(value))
    if name == "kdf_iter":
        if not value.isdigit() or not 1 <= int(value) <= MAX_KDF_ITER:
            raise UsageError(f"SQLCipher kdf_iter {value!r} is not a count from 1 to {MAX_KDF_ITER:,}",
                             hint=SETTINGS_HINT)
        return str(int(value))
    if name == "hmac":
        if value.lower() not in ("on", "off"):
            raise UsageError(f"SQLCipher hmac {value!r} is neither 'on' nor 'off'", hint=SETTINGS_HINT)
        return value.upper()
    upper = value.upper()
    if upper not in ALGORITHMS[name]:
        raise UsageError(f"SQLCipher {name} {value!r} is not one of {', '.join(ALGORITHMS[name])}",
                         hint=SETTINGS_HINT)
    return upper


def key_form_of(key: str, settings: CipherSettings, stated: bool) -> str:
    """'raw' for a raw key, 'passphrase' otherwise; a stated form wins."""
    if stated:
        return settings.key_form
    return "raw" if RAW_KEY.fullmatch(key) or QUOTED_RAW_KEY.fullmatch(key) else "passphrase"


def key_pragma(key: str, form: str, schema: str = "main") -> str:
    """`PRAGMA key` for `key` (in memory only: never logged, never in an exception)."""
    if "\x00" in key:
        raise UsageError("the key holds a NUL character", hint="write the key alone on one line")
    if form == "raw":
        match = QUOTED_RAW_KEY.fullmatch(key)
        hex_key = match.group(1) if match else key
        if not RAW_KEY.fullmatch(hex_key):
            raise UsageError("a raw SQLCipher key is 64 hex digits (or 96 with the salt)",
                             hint="or set key_form = \"passphrase\"")
        return f"PRAGMA {schema}.key = \"x'{hex_key}'\""
    return f"PRAGMA {schema}.key = '" + key.replace("'", "''") + "'"


def wechat_key(imei: str, uin: str) -> str:
    """WeChat Android's EnMicroMsg.db key: the first 7 hex digits of md5(IMEI + uin)."""
    return hashlib.md5((imei + uin).encode()).hexdigest()[:WECHAT_KEY_LENGTH]
