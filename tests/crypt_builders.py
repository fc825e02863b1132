"""Encoders for the encrypted sources' tests: SQLCipher files and WhatsApp .crypt14/.crypt15 backups.

Written from the published formats, independently of the plugins they test: the SQLCipher files
are filled row by row from Python (not with the plugin's copy), and the WhatsApp backups are
built from the format's description, then checked with an independent decryptor in the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import zlib
from pathlib import Path

import apsw
import sqlcipher3

from syncd.samples import create_wechat

WECHAT_IMEI = "866123045678901"
WECHAT_UIN = "-1723456789"
SIGNAL_KEY = "4e1a0c5f9b2d7e3c8a6f1b0d2e4c6a8f9d3b5e7c1a0f2d4b6e8c0a2f4d6b8e0c"


def write_key_file(path: Path, line: str) -> Path:
    path.write_text(line + "\n")
    os.chmod(path, 0o600)
    return path


def wechat_plain(path: Path, messages: int = 300) -> Path:
    """A decrypted EnMicroMsg.db as WeChat sees it: SQLCipher 1's 1 KiB pages, rowid gaps, an FTS table."""
    create_wechat(path, messages=messages, seed=7)
    db = apsw.Connection(str(path))
    db.execute("PRAGMA page_size = 1024; VACUUM")
    with db:
        # rcontact's implicit rowids are what message.talkerId points at: gaps must survive.
        db.execute("DELETE FROM rcontact WHERE rowid IN (SELECT rowid FROM rcontact ORDER BY rowid LIMIT 3 OFFSET 2)")
        db.execute("CREATE TABLE fts_meta(docid, talker)")  # no primary key: implicit rowids only
        db.execute("INSERT INTO fts_meta SELECT msgId, talker FROM message WHERE msgId % 3 = 0")
        db.execute("DELETE FROM fts_meta WHERE rowid % 4 = 1")
        db.execute("CREATE VIRTUAL TABLE fts_message USING fts5(content)")
        db.execute("INSERT INTO fts_message(rowid, content) SELECT msgId, content FROM message LIMIT 50")
        db.execute("CREATE TRIGGER message_gone AFTER DELETE ON message BEGIN "
                   "DELETE FROM fts_message WHERE rowid = old.msgId; END")
        db.execute("CREATE VIEW talkers AS SELECT DISTINCT talker FROM message")
    db.close()
    return path


def wechat_key(imei: str = WECHAT_IMEI, uin: str = WECHAT_UIN) -> str:
    """md5(IMEI + uin)[:7], computed here on its own."""
    return hashlib.md5(f"{imei}{uin}".encode("ascii")).hexdigest()[:7]


def encrypt_sqlcipher(plain: Path, out: Path, key_sql: str, compatibility: int) -> Path:
    """`plain` as an app writing SQLCipher would hold it: same schema, rows, rowids and settings.

    `key_sql` is the PRAGMA key value as SQL (`'pass'` or `"x'hex'"`).
    """
    src = apsw.Connection(f"file:{plain}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    out.unlink(missing_ok=True)
    dst = sqlcipher3.connect(str(out), isolation_level=None)
    dst.execute(f"PRAGMA key = {key_sql}")
    dst.execute(f"PRAGMA cipher_compatibility = {compatibility}")
    dst.execute(f"PRAGMA auto_vacuum = {src.execute('PRAGMA auto_vacuum').fetchone()[0]}")
    schema = src.execute("SELECT type, name, sql, rootpage FROM sqlite_master WHERE sql IS NOT NULL "
                         "ORDER BY rowid").fetchall()
    shadow = {name for _s, name, kind, *_ in src.execute("PRAGMA table_list") if kind == "shadow"}
    dst.execute("BEGIN")
    for kind, name, sql, _root in schema:
        if kind == "table" and name not in shadow:
            dst.execute(sql)
    for kind, name, sql, root in schema:
        if kind != "table" or name in shadow or name.startswith("sqlite_"):
            continue
        columns = [row[1] for row in src.execute(f'PRAGMA table_xinfo("{name}")') if row[6] == 0]
        listed = ", ".join(["rowid"] + [f'"{c}"' for c in columns])
        marks = ", ".join("?" * (len(columns) + 1))
        dst.executemany(f'INSERT INTO "{name}" ({listed}) VALUES ({marks})',
                        src.execute(f'SELECT {listed} FROM "{name}"').fetchall())
    if any(name == "sqlite_sequence" for _k, name, *_ in schema):
        dst.executemany("UPDATE sqlite_sequence SET seq = ? WHERE name = ?",
                        src.execute("SELECT seq, name FROM sqlite_sequence").fetchall())
    for kind, _name, sql, _root in schema:
        if kind in ("index", "trigger", "view"):
            dst.execute(sql)
    dst.execute(f"PRAGMA user_version = {src.execute('PRAGMA user_version').fetchone()[0]}")
    dst.execute(f"PRAGMA application_id = {src.execute('PRAGMA application_id').fetchone()[0]}")
    dst.execute("COMMIT")
    dst.execute(f"PRAGMA journal_mode = {src.execute('PRAGMA journal_mode').fetchone()[0]}")
    dst.close()
    src.close()
    return out


def wechat_sqlcipher(folder: Path) -> tuple[Path, Path]:
    """(EnMicroMsg.db encrypted with the key derived from WECHAT_IMEI and WECHAT_UIN, its plain original)."""
    plain = wechat_plain(folder / "plain-EnMicroMsg.db")
    phone = folder / "phone"
    phone.mkdir()
    return encrypt_sqlcipher(plain, phone / "EnMicroMsg.db", f"'{wechat_key()}'", 1), plain


def signal_desktop(folder: Path, fixture: Path, key: str = SIGNAL_KEY, config: dict | None = None) -> tuple[Path, Path]:
    """(a Signal Desktop folder: sql/db.sqlite in SQLCipher 4 with its key in config.json, the plain original).

    The payload is the fixture database (a real app's schema), in WAL mode as Signal keeps it.
    """
    plain = folder / "plain-signal.sqlite"
    plain.write_bytes(fixture.read_bytes())
    db = apsw.Connection(str(plain))
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    signal = folder / "Signal"
    (signal / "sql").mkdir(parents=True)
    encrypt_sqlcipher(plain, signal / "sql" / "db.sqlite", f"\"x'{key}'\"", 4)
    (signal / "config.json").write_text(json.dumps(config if config is not None else {"key": key}))
    return signal, plain


# --- WhatsApp .crypt14 / .crypt15, from the published layout -------------------------------------

def _pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_int(number: int, value: int) -> bytes:
    return _pb_varint(number << 3) + _pb_varint(value)


def pb_bytes(number: int, value: bytes) -> bytes:
    return _pb_varint(number << 3 | 2) + _pb_varint(len(value)) + value


def _sealed(header: bytes, aes_key: bytes, iv: bytes, plain: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    body = header + AESGCM(aes_key).encrypt(iv, zlib.compress(plain, 6), None)  # ciphertext, then the tag
    return body + hashlib.md5(body).digest()


def crypt15_key(root: bytes) -> bytes:
    """RFC 5869 HKDF-SHA256 written out: extract with a zero salt, one expand block."""
    pseudo = hmac.new(bytes(32), root, hashlib.sha256).digest()
    return hmac.new(pseudo, b"backup encryption" + b"\x01", hashlib.sha256).digest()


def crypt15(plain: bytes, root: bytes, iv: bytes, feature_flag: bool = True) -> bytes:
    """A msgstore.db.crypt15: [n][0x01][BackupPrefix][AES-GCM(zlib(db))][tag][md5]."""
    info = pb_bytes(1, b"2.24.10.74") + pb_bytes(2, b"12") + pb_int(3, 1)
    prefix = pb_int(1, 1) + pb_bytes(3, pb_bytes(1, iv)) + pb_bytes(4, info)
    header = bytes([len(prefix)]) + (b"\x01" if feature_flag else b"") + prefix
    return _sealed(header, crypt15_key(root), iv, plain)


def java_bytes(data: bytes) -> bytes:
    """Java's ObjectOutputStream form of a byte[] (how WhatsApp stores its key files)."""
    return (bytes.fromhex("aced0005" "75" "72" "0002") + b"[B" + bytes.fromhex("acf317f8060854e0")
            + b"\x02" + b"\x00\x00" + b"\x78" + b"\x70" + len(data).to_bytes(4, "big") + data)


def crypt14_key_file(salt: bytes, aes_key: bytes, rng) -> bytes:
    """WhatsApp's 158-byte `key` file: cipher version, key version, server salt, google id,
    hashed google id, iv, key."""
    body = b"\x00\x01" + b"\x01" + salt + rng.randbytes(16) + rng.randbytes(32) + rng.randbytes(16) + aes_key
    return java_bytes(body)


def crypt14(plain: bytes, salt: bytes, aes_key: bytes, iv: bytes, rng) -> bytes:
    """A msgstore.db.crypt14 whose header puts the salt at 15 and the IV at 67, data at 191."""
    cipher = (pb_bytes(1, pb_int(1, 1)) + pb_bytes(2, b"\x01") + pb_bytes(3, salt)
              + pb_bytes(4, rng.randbytes(16)) + pb_bytes(5, iv))
    start = pb_int(1, 0) + pb_bytes(2, cipher)
    info = pb_bytes(1, b"2.22.5.13") + pb_bytes(2, b"34") + pb_int(3, 1)
    filler = 189 - len(start) - len(info) - 2 - 2  # fields 4 and 15, each a one-byte tag and length
    prefix = start + pb_bytes(4, info + pb_bytes(15, b"\x00" * filler))
    assert len(prefix) == 189
    return _sealed(bytes([len(prefix), 1]) + prefix, aes_key, iv, plain)
