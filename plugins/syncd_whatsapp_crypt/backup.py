"""WhatsApp Android's encrypted backups (`msgstore.db.crypt14`, `.crypt15`): header, keys, decryption.

The layout, as published by the open-source tools that read it (see docs/sources.md):

    [n: 1 byte] [0x01, present in message backups] [BackupPrefix: n bytes of protobuf]
    [AES-256-GCM ciphertext of the zlib-compressed SQLite file] [GCM tag: 16] [MD5 of all before: 16]

BackupPrefix: 1 key_type (varint); 2 c14_cipher {3 server_salt (32), 5 iv (16), …};
3 c15_iv {1 iv (16)}; other fields (app version, account suffix, features) are not needed.
crypt15's AES key is HKDF-SHA256 of the 32-byte end-to-end backup key (zero salt, info
"backup encryption"); crypt14's is the last 32 bytes of the 158-byte `key` file WhatsApp keeps,
whose bytes 30–62 repeat the backup's server salt.

Everything read is bounded: the header by its one length byte, the protobuf by its own lengths,
the output by a cap on what decompression may produce.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path


from syncd.errors import KeyProblem, SourceError
from syncd.fsutil import open_untouched, private_opener
from syncd.source import SECRET_MAX_BYTES, check_private

FEATURE_FLAG = 0x01  # a protobuf never starts with it (field 0 doesn't exist)
HEAD_MAX = 2 + 255
TAG, CHECKSUM = 16, 16
IV_BYTES, SALT_BYTES, KEY_BYTES = 16, 32, 32
CRYPT15_INFO = b"backup encryption"
CHUNK = 1 << 20
# Decompressed output may be this many times the backup (SQLite pages compress 2–5×; free pages far
# more), with a floor for small backups and a ceiling for everything: a hostile stream stops there.
MAX_RATIO, MIN_CAP, MAX_CAP = 200, 256 << 20, 64 << 30
# Java's serialisation of a byte[]: magic, array, class "[B", its serial UID, flags, no fields, length.
JAVA_BYTES_HEADER = bytes.fromhex("aced0005757200025b42acf317f8060854e00200007870")
KEY14_BYTES = 131  # crypt14's key file: byte[131] serialised, 158 bytes
KEY_FILE_HINT = ("crypt15: the 64-digit end-to-end backup key on one line; "
                 "crypt14: WhatsApp's 158-byte key file (/data/data/com.whatsapp/files/key); mode 0600")


@dataclass(frozen=True)
class Header:
    version: int  # 14 or 15
    iv: bytes
    start: int  # where the ciphertext begins
    server_salt: bytes | None = None  # crypt14: must match the key file's


@dataclass(frozen=True)
class BackupKey:
    """What a key file holds: crypt15's root key, or crypt14's server salt and AES key."""

    root: bytes | None = None
    salt14: bytes | None = None
    aes14: bytes | None = None

    def aes_key(self, header: Header, backup: Path) -> bytes:
        if header.version == 15:
            if self.root is None:
                raise KeyProblem(f"{backup} is a crypt15 backup: it opens with the 64-digit backup key, "
                                 "not a crypt14 key file", hint=KEY_FILE_HINT)
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=CRYPT15_INFO).derive(self.root)
        if self.aes14 is None:
            raise KeyProblem(f"{backup} is a crypt14 backup: it opens with WhatsApp's key file, "
                             "not a 64-digit backup key", hint=KEY_FILE_HINT)
        if header.server_salt is not None and header.server_salt != self.salt14:
            raise KeyProblem(f"the key file does not belong to {backup} (another account or phone)",
                             hint=KEY_FILE_HINT)
        return self.aes14


def parse_fields(data: bytes) -> dict[int, list]:
    """A protobuf message's fields: number → values (int for varints, bytes for lengths)."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if length > len(data) - pos:
                raise ValueError("length past the end")
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if size > len(data) - pos:
                raise ValueError("fixed field past the end")
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise ValueError("varint past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError("varint too long")


def parse_header(head: bytes) -> Header:
    """The header at the start of a backup; ValueError when it isn't one."""
    if len(head) < 2:
        raise ValueError("too short")
    size = head[0]
    skip = 2 if head[1] == FEATURE_FLAG else 1
    if size == 0 or len(head) < skip + size:
        raise ValueError("header past the end")
    prefix = parse_fields(head[skip:skip + size])
    start = skip + size
    c15, c14 = prefix.get(3), prefix.get(2)
    if c15 and isinstance(c15[0], bytes):
        iv = parse_fields(c15[0]).get(1, [b""])[0]
        if isinstance(iv, bytes) and len(iv) == IV_BYTES:
            return Header(15, iv, start)
    if c14 and isinstance(c14[0], bytes):
        cipher = parse_fields(c14[0])
        iv, salt = cipher.get(5, [b""])[0], cipher.get(3, [None])[0]
        if isinstance(iv, bytes) and len(iv) == IV_BYTES and (salt is None or isinstance(salt, bytes) and len(salt) == SALT_BYTES):
            return Header(14, iv, start, salt)
    raise ValueError("no IV")


def read_header(path: Path) -> Header:
    """The backup's header, or a SourceError saying the file isn't a WhatsApp backup."""
    try:
        fd = open_untouched(path)
    except FileNotFoundError:
        raise SourceError(f"{path} does not exist", hint="check the path to the backup") from None
    except OSError as e:
        raise SourceError(f"{path} can't be read: {e.strerror}", hint="check its permissions") from None
    try:
        head = os.pread(fd, HEAD_MAX, 0)
    finally:
        os.close(fd)
    try:
        return parse_header(head)
    except ValueError:
        raise SourceError(f"{path} is not a WhatsApp .crypt14/.crypt15 backup (its header doesn't parse)",
                          hint="give the msgstore.db.crypt14 or .crypt15 file from WhatsApp/Databases") from None


def load_key(path: Path) -> BackupKey:
    """A key file: 64 hex digits (crypt15), or Java-serialised bytes (crypt14's `key`, crypt15's
    `encrypted_backup.key`). Refused unless private; the key appears in no message."""
    path = Path(path).expanduser()
    check_private(path, "key file")
    try:
        with open(path, "rb") as f:
            raw = f.read(SECRET_MAX_BYTES + 1)
    except OSError as e:
        raise KeyProblem(f"can't read key file {path}: {e.strerror}", hint="check the path") from None
    if raw.startswith(JAVA_BYTES_HEADER[:4]) and len(raw) <= SECRET_MAX_BYTES:
        head, body = raw[:len(JAVA_BYTES_HEADER)], raw[len(JAVA_BYTES_HEADER) + 4:]
        length = int.from_bytes(raw[len(JAVA_BYTES_HEADER):len(JAVA_BYTES_HEADER) + 4], "big")
        if head == JAVA_BYTES_HEADER and length == len(body) == KEY_BYTES:
            return BackupKey(root=body)
        if head == JAVA_BYTES_HEADER and length == len(body) == KEY14_BYTES:
            return BackupKey(salt14=body[3:3 + SALT_BYTES], aes14=body[-KEY_BYTES:])
    else:
        line = raw[:SECRET_MAX_BYTES].split(b"\n", 1)[0].strip().replace(b" ", b"")
        if len(raw) <= SECRET_MAX_BYTES and len(line) == 2 * KEY_BYTES:
            try:
                return BackupKey(root=bytes.fromhex(line.decode("ascii")))
            except (UnicodeDecodeError, ValueError):
                pass
    raise KeyProblem(f"key file {path} holds no WhatsApp backup key", hint=KEY_FILE_HINT)


def decrypt(path: Path, key: BackupKey, out: Path, cap: int | None = None) -> None:
    """Decrypt and inflate the backup at `path` into the new private file `out`, checked whole.

    A wrong key is a KeyProblem, a damaged or truncated backup a SourceError; either way `out`
    is removed. `cap` bounds the decompressed size (default: from the backup's size).
    """
    try:
        fd = open_untouched(path)
    except OSError as e:
        raise SourceError(f"{path} can't be read: {e.strerror}", hint="check its permissions") from None
    try:
        _decrypt_fd(fd, path, key, out, cap)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _decrypt_fd(fd: int, path: Path, key: BackupKey, out: Path, cap: int | None) -> None:
    # Imported here: every syncd command loads this plugin to ask whether a path is a backup.
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    before = os.fstat(fd)
    size = before.st_size
    try:
        header = parse_header(os.pread(fd, HEAD_MAX, 0))
    except ValueError:
        raise SourceError(f"{path} is not a WhatsApp .crypt14/.crypt15 backup (its header doesn't parse)") from None
    end = size - TAG - CHECKSUM
    if end <= header.start:
        raise SourceError(f"{path} is truncated ({size:,} bytes)", hint="copy the backup from the phone again")
    cap = cap if cap is not None else min(MAX_CAP, max(MIN_CAP, MAX_RATIO * size))
    tag, checksum = os.pread(fd, TAG, end), os.pread(fd, CHECKSUM, end + TAG)
    decryptor = Cipher(algorithms.AES(key.aes_key(header, path)), modes.GCM(header.iv, tag)).decryptor()
    digest = hashlib.md5(os.pread(fd, header.start, 0), usedforsecurity=False)
    inflater, written, broken = zlib.decompressobj(), 0, None
    with open(out, "xb", opener=private_opener) as sink:
        pos = header.start
        while pos < end:
            chunk = os.pread(fd, min(CHUNK, end - pos), pos)
            if not chunk:
                raise SourceError(f"{path} shrank while it was read", hint="syncd will try again on the next pass")
            pos += len(chunk)
            digest.update(chunk)
            if broken is None:  # after a bad stream, read on only to tell a wrong key from damage
                try:
                    written = _inflate(inflater, decryptor.update(chunk), sink, written, cap, path)
                except zlib.error:
                    broken = "it holds no compressed SQLite database"
            else:
                decryptor.update(chunk)
        digest.update(tag)
        try:
            decryptor.finalize()
        except InvalidTag:
            if digest.digest() == checksum:
                raise KeyProblem(f"the key does not open {path}", hint=KEY_FILE_HINT) from None
            raise SourceError(f"{path} is damaged or incomplete (its checksum doesn't match)",
                              hint="copy the backup from the phone again") from None
        if broken is None and not inflater.eof:
            broken = "its compressed database ends early"
        if broken:
            raise SourceError(f"{path} decrypts, but {broken}", hint="is it a WhatsApp message backup?")
        sink.flush()
        os.fsync(sink.fileno())
    after = os.stat(path)
    if (after.st_ino, after.st_size, after.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
        raise SourceError(f"{path} changed while it was read", hint="syncd will try again on the next pass")


def _inflate(inflater, data: bytes, sink, written: int, cap: int, path: Path) -> int:
    """Inflate `data` into `sink` a bounded piece at a time; the bytes written so far."""
    while data and not inflater.eof:
        piece = inflater.decompress(data, CHUNK)
        if written == 0 and piece and not piece.startswith(b"SQLite format 3\x00"[:len(piece)]):
            raise zlib.error("not SQLite")
        written += len(piece)
        if written > cap:
            raise SourceError(f"{path} inflates past {cap:,} bytes: more than any chat database here",
                              hint="is it damaged? copy the backup from the phone again")
        sink.write(piece)
        data = inflater.unconsumed_tail
    return written
