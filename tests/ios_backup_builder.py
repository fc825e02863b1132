"""A test encoder for iOS backups: plain and encrypted backup folders built from real databases.

It writes what Finder, iTunes and idevicebackup2 write, from the published format (see
docs/sources.md, "iOS backups"): `Manifest.db` with the real `Files` schema and indexes, each
row's `file` an NSKeyedArchiver `MBFile` plist, each file at `<fileID[:2]>/<fileID>` with
`fileID = sha1(domain + "-" + relativePath)`, and `Info.plist`, `Status.plist`,
`Manifest.plist`. Encrypted backups get a BackupKeyBag (TLV) whose class keys are wrapped
(RFC 3394) by a key made from the password with PBKDF2-SHA256 then PBKDF2-SHA1, per-file
AES-256-CBC keys wrapped by their protection class's key, and Manifest.db encrypted under
`ManifestKey`. Round counts are low here; the format records them, so readers follow.

Like idevicebackup2, `write()` updates a backup in place: only files that changed are
rewritten; Manifest.db and the plists always are.
"""

from __future__ import annotations

import hashlib
import os
import plistlib
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import apsw
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

FILES_SCHEMA = """
CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB);
CREATE INDEX FilesDomainIdx ON Files(domain);
CREATE INDEX FilesRelativePathIdx ON Files(relativePath);
CREATE INDEX FilesFlagsIdx ON Files(flags);
CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);
"""
PROTECTION_CLASSES = range(1, 12)
FILE_CLASS = 3  # NSFileProtectionCompleteUntilFirstUserAuthentication: what most app data uses
MANIFEST_CLASS = 4
SMS = ("HomeDomain", "Library/SMS/sms.db")
WHATSAPP = ("AppDomainGroup-group.net.whatsapp.WhatsApp.shared", "ChatStorage.sqlite")
WHATSAPP_BUSINESS = ("AppDomainGroup-group.net.whatsapp.WhatsAppSMB.shared", "ChatStorage.sqlite")
WECHAT = "AppDomain-com.tencent.xin"


def file_id(domain: str, relative_path: str) -> str:
    return hashlib.sha1(f"{domain}-{relative_path}".encode()).hexdigest()


def wechat_path(account: str, db: str) -> tuple[str, str]:
    """WeChat's place for database `db` ("MM", "message_1"…) of account `account` (a wxid)."""
    return WECHAT, f"Documents/{hashlib.md5(account.encode()).hexdigest()}/DB/{db}.sqlite"


def mbfile(relative_path: str, size: int, mtime: int, protection_class: int, inode: int,
           wrapped_key: bytes | None = None) -> bytes:
    """The `file` blob of a Files row: an NSKeyedArchiver archive of an MBFile."""
    uid = plistlib.UID
    root = {"LastModified": mtime, "Birth": mtime, "LastStatusChange": mtime, "Size": size,
            "ProtectionClass": protection_class, "Mode": 0o100644, "InodeNumber": inode,
            "UserID": 501, "GroupID": 501, "Flags": 0, "RelativePath": uid(2)}
    objects: list = ["$null", root, relative_path]
    if wrapped_key is not None:
        root["EncryptionKey"] = uid(3)
        objects.append({"NS.data": protection_class.to_bytes(4, "little") + wrapped_key, "$class": uid(4)})
        objects.append({"$classname": "NSMutableData", "$classes": ["NSMutableData", "NSData", "NSObject"]})
    root["$class"] = uid(len(objects))
    objects.append({"$classname": "MBFile", "$classes": ["MBFile", "NSObject"]})
    return plistlib.dumps({"$version": 100000, "$archiver": "NSKeyedArchiver", "$top": {"root": uid(1)},
                           "$objects": objects}, fmt=plistlib.FMT_BINARY, sort_keys=False)


def encrypt(data: bytes, key: bytes) -> bytes:
    """AES-256-CBC, zero IV, PKCS#7: how a backup stores each file."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def tlv(tag: bytes, value: bytes | int) -> bytes:
    raw = value.to_bytes(4, "big") if isinstance(value, int) else value
    return tag + len(raw).to_bytes(4, "big") + raw


@dataclass
class Keys:
    """An encrypted backup's secrets, as the phone chose them."""

    password: str
    sha256_rounds: int
    sha1_rounds: int
    salt: bytes
    dpsl: bytes
    class_keys: dict[int, bytes]
    manifest_key: bytes

    @classmethod
    def new(cls, password: str, rng: random.Random, sha256_rounds: int = 10, sha1_rounds: int = 10) -> Keys:
        return cls(password, sha256_rounds, sha1_rounds, rng.randbytes(20), rng.randbytes(20),
                   {c: rng.randbytes(32) for c in PROTECTION_CLASSES}, rng.randbytes(32))

    def keybag(self) -> bytes:
        kek = hashlib.pbkdf2_hmac("sha1", hashlib.pbkdf2_hmac("sha256", self.password.encode(), self.dpsl,
                                                              self.sha256_rounds, 32),
                                  self.salt, self.sha1_rounds, 32)
        bag = (tlv(b"VERS", 4) + tlv(b"TYPE", 1) + tlv(b"UUID", bytes(range(16))) + tlv(b"HMCK", bytes(40))
               + tlv(b"WRAP", 0) + tlv(b"SALT", self.salt) + tlv(b"ITER", self.sha1_rounds) + tlv(b"DPWT", 1)
               + tlv(b"DPIC", self.sha256_rounds) + tlv(b"DPSL", self.dpsl))
        for clas, key in self.class_keys.items():
            bag += (tlv(b"UUID", bytes([clas]) * 16) + tlv(b"CLAS", clas) + tlv(b"WRAP", 2) + tlv(b"KTYP", 0)
                    + tlv(b"WPKY", aes_key_wrap(kek, key)))
        return bag

    def manifest_key_record(self) -> bytes:
        return MANIFEST_CLASS.to_bytes(4, "little") + aes_key_wrap(self.class_keys[MANIFEST_CLASS], self.manifest_key)


@dataclass
class _Entry:
    data: bytes
    mtime: int
    key: bytes | None  # the file's own key, in an encrypted backup
    dirty: bool = True


class BackupBuilder:
    """One device's backup folder, written from (domain, relativePath) → bytes."""

    def __init__(self, folder: Path, *, device_name: str = "Ann's iPhone", udid: str | None = None,
                 password: str | None = None, seed: int = 0, sha256_rounds: int = 10, sha1_rounds: int = 10,
                 filler_rows: int = 0):
        self.folder = Path(folder)
        self.rng = random.Random(seed)
        self.device_name = device_name
        self.udid = udid or self.rng.randbytes(20).hex()
        self.keys = Keys.new(password, self.rng, sha256_rounds, sha1_rounds) if password is not None else None
        self.filler_rows = filler_rows
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.state = "finished"
        self.clock = 700_000_000

    def put(self, place: tuple[str, str], data: bytes) -> None:
        """The phone's file at `place` is now `data` (written on the next `write`)."""
        old = self.entries.get(place)
        if old is not None and old.data == data:
            return
        self.clock += 60
        key = self.rng.randbytes(32) if self.keys is not None else None
        self.entries[place] = _Entry(data, self.clock, key)

    def write(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        for place, entry in self.entries.items():
            if entry.dirty:
                path = self.folder / self._stored(place)
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(encrypt(entry.data, entry.key) if entry.key else entry.data)
                entry.dirty = False
        self._write_manifest_db()
        self._plist("Info.plist", {"Device Name": self.device_name, "Display Name": self.device_name,
                                   "Unique Identifier": self.udid.upper(), "Target Identifier": self.udid,
                                   "Product Type": "iPhone14,2", "Product Version": "17.5",
                                   "Last Backup Date": datetime(2024, 6, 1)})
        self._plist("Status.plist", {"SnapshotState": self.state, "IsFullBackup": False, "Version": "3.3",
                                     "BackupState": "new", "UUID": self.udid,
                                     "Date": datetime(2024, 6, 1)})
        manifest = {"IsEncrypted": self.keys is not None, "Version": "10.0", "Applications": {},
                    "Lockdown": {"DeviceName": self.device_name, "UniqueDeviceID": self.udid}}
        if self.keys is not None:
            manifest["BackupKeyBag"] = self.keys.keybag()
            manifest["ManifestKey"] = self.keys.manifest_key_record()
        self._plist("Manifest.plist", manifest)
        return self.folder

    def _stored(self, place: tuple[str, str]) -> str:
        fid = file_id(*place)
        return f"{fid[:2]}/{fid}"

    def _row(self, place: tuple[str, str], entry: _Entry, inode: int) -> tuple:
        wrapped = None
        if self.keys is not None:
            wrapped = aes_key_wrap(self.keys.class_keys[FILE_CLASS], entry.key)
        blob = mbfile(place[1], len(entry.data), entry.mtime, FILE_CLASS, inode, wrapped)
        return file_id(*place), place[0], place[1], 1, blob

    def _write_manifest_db(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            plain = Path(scratch) / "Manifest.db"
            db = apsw.Connection(str(plain))
            with db:
                db.execute(FILES_SCHEMA)
                rows = [self._row(place, entry, n + 1000) for n, place_entry in enumerate(self.entries.items())
                        for place, entry in [place_entry]]
                folders = {(domain, str(Path(path).parent)) for domain, path in self.entries}
                rows += [(file_id(*f), f[0], f[1], 2, mbfile(f[1], 0, self.clock, 0, 1)) for f in sorted(folders)]
                db.executemany("INSERT INTO Files VALUES (?, ?, ?, ?, ?)", rows)
                self._filler(db)
                db.execute("INSERT INTO Properties VALUES ('salt', ?)", (self.rng.randbytes(16),))
            db.close()
            data = plain.read_bytes()
        target = self.folder / "Manifest.db"
        tmp = target.with_suffix(".new")
        tmp.write_bytes(encrypt(data, self.keys.manifest_key) if self.keys else data)
        os.replace(tmp, target)

    def _filler(self, db: apsw.Connection) -> None:
        """Rows of other apps' files (photos, caches): what makes a real Manifest.db large."""
        if not self.filler_rows:
            return
        wrapped = aes_key_wrap(self.keys.class_keys[FILE_CLASS], bytes(32)) if self.keys else None
        blob = mbfile("Library/Caches/x", 4096, self.clock, FILE_CLASS, 7, wrapped)

        def rows():
            for n in range(self.filler_rows):
                domain, path = f"AppDomain-com.example.app{n % 97}", f"Library/Caches/{n:08d}.dat"
                yield file_id(domain, path), domain, path, 1, blob

        db.executemany("INSERT INTO Files VALUES (?, ?, ?, ?, ?)", rows())

    def _plist(self, name: str, value: dict) -> None:
        (self.folder / name).write_bytes(plistlib.dumps(value, fmt=plistlib.FMT_XML if name == "Info.plist"
                                                        else plistlib.FMT_BINARY))


def wal_pair(database: Path, change: str) -> tuple[bytes, bytes]:
    """The bytes of a WAL database and of a `-wal` holding `change` (SQL) not yet checkpointed:
    what a backup taken while the app was running holds."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "db.sqlite"
        copy.write_bytes(Path(database).read_bytes())
        db = apsw.Connection(str(copy))
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        with db:
            db.execute(change)
        pair = copy.read_bytes(), Path(f"{copy}-wal").read_bytes()  # read while the connection keeps the WAL
        db.close()
        return pair


def wechat_message_shard(path: Path, chats: int, messages: int, seed: int) -> None:
    """A WeChat iOS `message_<n>.sqlite`: one `Chat_<md5(username)>` table per chat."""
    rng = random.Random(seed)
    db = apsw.Connection(str(path))
    with db:
        for c in range(chats):
            table = f"Chat_{hashlib.md5(f'wxid_{seed}_{c}'.encode()).hexdigest()}"
            db.execute(f"CREATE TABLE {table} (TableVer INTEGER DEFAULT 1, MesLocalID INTEGER PRIMARY KEY "
                       f"AUTOINCREMENT, MesSvrID INTEGER DEFAULT 0, CreateTime INTEGER DEFAULT 0, Message TEXT, "
                       f"Status INTEGER DEFAULT 0, ImgStatus INTEGER DEFAULT 0, Type INTEGER, Des INTEGER)")
            db.executemany(f"INSERT INTO {table} (MesSvrID, CreateTime, Message, Status, Type, Des) "
                           f"VALUES (?, ?, ?, 2, 1, ?)",
                           [(rng.getrandbits(62), 1_700_000_000 + m * 60, f"消息 {c}-{m} 你好", rng.randint(0, 1))
                            for m in range(messages)])
    db.close()


def wechat_contacts(path: Path, count: int, seed: int) -> None:
    """A WeChat iOS `WCDB_Contact.sqlite`."""
    db = apsw.Connection(str(path))
    with db:
        db.execute("CREATE TABLE Friend (userName TEXT PRIMARY KEY, type INTEGER, certificationFlag INTEGER, "
                   "dbContactRemark BLOB, dbContactHeadImage BLOB, dbContactProfile BLOB)")
        db.executemany("INSERT INTO Friend VALUES (?, 3, 0, ?, NULL, NULL)",
                       [(f"wxid_{seed}_{n}", f"朋友 {n}".encode()) for n in range(count)])
    db.close()


def phone_files(scratch: Path, fixtures: Path) -> dict[tuple[str, str], bytes]:
    """What a phone holds, place by place: the real fixtures (iMessage; WhatsApp with a -wal, as
    backed up while the app ran) and sample databases (WhatsApp Business, a WeChat account)."""
    from syncd.samples import create_wechat, create_whatsapp

    files = {SMS: (fixtures / "imessage-macos-chat.db").read_bytes()}
    db, wal = wal_pair(fixtures / "whatsapp-ios-ChatStorage.sqlite",
                       "UPDATE ZWAMESSAGE SET ZTEXT = 'edited after the last checkpoint' "
                       "WHERE Z_PK = (SELECT min(Z_PK) FROM ZWAMESSAGE)")
    files[WHATSAPP], files[(WHATSAPP[0], WHATSAPP[1] + "-wal")] = db, wal
    create_whatsapp(scratch / "business.db", messages=120)
    files[WHATSAPP_BUSINESS] = _checkpointed(scratch / "business.db")
    create_wechat(scratch / "MM.sqlite", messages=150)
    files[wechat_path("wxid_ann", "MM")] = (scratch / "MM.sqlite").read_bytes()
    wechat_contacts(scratch / "contacts.sqlite", 30, seed=1)
    files[wechat_path("wxid_ann", "WCDB_Contact")] = (scratch / "contacts.sqlite").read_bytes()
    for shard in (1, 2):
        wechat_message_shard(scratch / f"m{shard}.sqlite", chats=4, messages=40, seed=shard)
        files[wechat_path("wxid_ann", f"message_{shard}")] = (scratch / f"m{shard}.sqlite").read_bytes()
    return files


def _checkpointed(path: Path) -> bytes:
    """A WAL database's bytes with everything checkpointed into the file."""
    db = apsw.Connection(str(path))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path.read_bytes()


def edited(data: bytes, out: Path, text: str) -> Path:
    """An iMessage database (`data`) whose newest message the user edited to `text`, written to `out`."""
    out.write_bytes(data)
    db = apsw.Connection(str(out))
    db.execute("UPDATE message SET text = ? WHERE ROWID = (SELECT max(ROWID) FROM message)", (text,))
    db.close()
    return out
