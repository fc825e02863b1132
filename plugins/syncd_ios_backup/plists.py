"""The backup's property lists, read with bounds and checked types.

A backup folder is outside input: every plist is read through a no-atime
descriptor up to a size limit, and every value syncd uses is checked for its
type before use. `Info.plist` and `Manifest.plist` can be megabytes (they carry
app lists and icons), so their limits are generous; the `file` blobs of
`Manifest.db` are a few hundred bytes each.
"""

from __future__ import annotations

import plistlib
from dataclasses import dataclass
from pathlib import Path
from xml.parsers.expat import ExpatError

from syncd.errors import SourceError

from .reading import read_bounded

INFO_MAX_BYTES = 64 << 20
MANIFEST_PLIST_MAX_BYTES = 64 << 20
STATUS_MAX_BYTES = 1 << 20
FILE_BLOB_MAX_BYTES = 64 << 10
MAX_FILE_SIZE = 1 << 40  # a recorded size beyond 1 TiB is damage, not a chat database
WRAPPED_FILE_KEY_BYTES = 40  # RFC 3394 wrap of a 32-byte key
FINISHED = "finished"
# What plistlib raises on damaged input: an XML plist goes through expat (ExpatError) and a
# malformed <date> fails inside plistlib itself (AttributeError), besides the usual kinds.
PLIST_ERRORS = (plistlib.InvalidFileException, ValueError, TypeError, OverflowError, IndexError, KeyError,
                AttributeError, RecursionError, ExpatError)


def load_plist(path: Path, limit: int) -> dict:
    """A plist file whose top level is a dictionary."""
    try:
        value = plistlib.loads(read_bounded(path, limit))
    except PLIST_ERRORS as e:
        raise SourceError(f"{path} is not a readable property list ({type(e).__name__})",
                          hint="the backup may be damaged; make a new one") from None
    if not isinstance(value, dict):
        raise SourceError(f"{path} is not a property list dictionary", hint="the backup may be damaged")
    return value


@dataclass(frozen=True)
class DeviceInfo:
    """What Info.plist says about the phone."""

    name: str | None  # the user's name for it: "Ann's iPhone"
    udid: str | None


def device_info(folder: Path) -> DeviceInfo:
    info = load_plist(folder / "Info.plist", INFO_MAX_BYTES) if (folder / "Info.plist").exists() else {}
    name = info.get("Device Name") or info.get("Display Name")
    udid = info.get("Unique Identifier") or info.get("Target Identifier")
    return DeviceInfo(name if isinstance(name, str) else None, udid if isinstance(udid, str) else None)


def snapshot_state(folder: Path) -> str | None:
    """Status.plist's `SnapshotState` ("finished" once the backup is complete), None if absent or unreadable."""
    status = load_plist(folder / "Status.plist", STATUS_MAX_BYTES)
    state = status.get("SnapshotState")
    return state if isinstance(state, str) else None


@dataclass(frozen=True)
class Encryption:
    """Manifest.plist's record of an encrypted backup."""

    keybag: bytes  # BackupKeyBag: TLV records
    manifest_class: int  # the protection class whose key wraps Manifest.db's key
    wrapped_manifest_key: bytes


def encryption(folder: Path) -> Encryption | None:
    """None for a plain backup; what unlocks an encrypted one otherwise."""
    path = folder / "Manifest.plist"
    manifest = load_plist(path, MANIFEST_PLIST_MAX_BYTES)
    encrypted = manifest.get("IsEncrypted", False)
    if not isinstance(encrypted, bool):
        raise SourceError(f"{path}: IsEncrypted is not a boolean", hint="the backup may be damaged")
    if not encrypted:
        return None
    keybag, key = manifest.get("BackupKeyBag"), manifest.get("ManifestKey")
    if not isinstance(keybag, bytes) or not keybag:
        raise SourceError(f"{path} has no BackupKeyBag", hint="the backup may be damaged")
    # ManifestKey: the protection class (4 bytes, little-endian), then the wrapped key.
    if not isinstance(key, bytes) or len(key) != 4 + WRAPPED_FILE_KEY_BYTES:
        raise SourceError(f"{path} has no usable ManifestKey (iOS before 10.2 is not supported)",
                          hint="make a new backup with a current iOS and Finder/iTunes")
    return Encryption(keybag, int.from_bytes(key[:4], "little"), key[4:])


@dataclass(frozen=True)
class FileRecord:
    """A `Files` row's `file` blob: the backup's own record of one file."""

    size: int
    mtime: int
    protection_class: int
    wrapped_key: bytes | None  # 40 bytes in an encrypted backup; None in a plain one or for empty files


def file_record(blob: object) -> FileRecord:
    """Decode the NSKeyedArchiver MBFile plist of a `Files` row, checking every field it uses."""
    if not isinstance(blob, bytes) or len(blob) > FILE_BLOB_MAX_BYTES:
        raise ValueError("the file record is not a blob of a sane size")
    try:
        archive = plistlib.loads(blob, fmt=plistlib.FMT_BINARY)
    except PLIST_ERRORS:
        raise ValueError("the file record is not a binary plist") from None
    objects, top = (archive.get("$objects"), archive.get("$top")) if isinstance(archive, dict) else (None, None)
    if not isinstance(objects, list) or not isinstance(top, dict):
        raise ValueError("the file record is not a keyed archive")
    root = _deref(objects, top.get("root"))
    if not isinstance(root, dict):
        raise ValueError("the file record has no root object")
    size, mtime, protection = root.get("Size"), root.get("LastModified", 0), root.get("ProtectionClass", 0)
    for field, value in (("Size", size), ("LastModified", mtime), ("ProtectionClass", protection)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"the file record's {field} is not an integer")
    if not 0 <= size <= MAX_FILE_SIZE or not 0 <= protection < 64:
        raise ValueError("the file record's Size or ProtectionClass is out of range")
    wrapped = None
    if "EncryptionKey" in root:
        holder = _deref(objects, root["EncryptionKey"])
        data = holder.get("NS.data") if isinstance(holder, dict) else None
        # NS.data: the protection class again (4 bytes), then the wrapped key.
        if not isinstance(data, bytes) or len(data) != 4 + WRAPPED_FILE_KEY_BYTES:
            raise ValueError("the file record's EncryptionKey is not a wrapped key")
        wrapped = data[4:]
    return FileRecord(size, mtime, protection, wrapped)


def _deref(objects: list, ref: object) -> object:
    if not isinstance(ref, plistlib.UID) or not 0 < ref.data < len(objects):
        raise ValueError("the file record refers outside its objects")
    return objects[ref.data]
