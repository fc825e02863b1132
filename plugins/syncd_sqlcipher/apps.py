"""Where the apps that use SQLCipher keep their database and key: Signal Desktop, WeChat Android."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from syncd.errors import KeyProblem, SourceError
from syncd.fsutil import open_untouched

SIGNAL_DB = Path("sql") / "db.sqlite"
SIGNAL_CONFIG = "config.json"
CONFIG_MAX_BYTES = 1 << 20  # Signal's is a few hundred bytes
SIGNAL_KEY = re.compile(r"[0-9a-fA-F]{64}")
WECHAT_NAMES = ("EnMicroMsg.db",)


def signal_folder(path: Path) -> Path | None:
    """Signal Desktop's folder when `path` is it, or its `sql/db.sqlite`; else None."""
    path = Path(path)
    if path.is_dir():
        folder = path
    elif path.name == SIGNAL_DB.name and path.parent.name == SIGNAL_DB.parent.name:
        folder = path.parent.parent
    else:
        return None
    return folder if (folder / SIGNAL_CONFIG).is_file() and (folder / SIGNAL_DB).is_file() else None


def is_wechat(path: Path) -> bool:
    return Path(path).name in WECHAT_NAMES


def signal_key(folder: Path) -> str:
    """The database key in Signal Desktop's config.json: 64 hex digits, a raw SQLCipher key."""
    config = folder / SIGNAL_CONFIG
    try:
        fd = open_untouched(config)
    except OSError as e:
        raise SourceError(f"can't read {config}: {e.strerror}", hint="check its permissions") from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(CONFIG_MAX_BYTES + 1)
    try:
        if len(raw) > CONFIG_MAX_BYTES:
            raise ValueError
        config_values = json.loads(raw)
        if not isinstance(config_values, dict):
            raise ValueError
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise SourceError(f"{config} is not Signal Desktop's config (a small JSON object)",
                          hint="give the Signal folder that holds sql/db.sqlite") from None
    key = config_values.get("key")
    if key is None and "encryptedKey" in config_values:
        raise KeyProblem(f"{config} holds only encryptedKey: this Signal Desktop keeps its database key "
                         "in the system keychain, which syncd does not read",
                         hint="decrypt the key with the keychain, write its 64 hex digits to a key file "
                              "(mode 0600) and give --key-file")
    if not isinstance(key, str) or not SIGNAL_KEY.fullmatch(key):
        raise KeyProblem(f"{config} holds no database key (\"key\": 64 hex digits)",
                         hint="give the key with --key-file (one line, mode 0600)")
    return key
