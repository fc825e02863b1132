"""A hostile target: archives forged by whoever controls the storage.

Someone who can write to a target (a shared NAS, a cloud drive) can replace any
object and the manifest, recomputing every hash, and on an encrypted target can
do the same with nothing but the public recipient. What they write may be read,
checked and refused, never executed: a restore runs one statement of the kind a
schema entry claims, in a connection that can't reach any other file, and bad
fields fail with one line naming the object.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import apsw
import pytest
import zstandard
from test_bad_input import error_lines, run_syncd

from conftest import Harness
from logical import logical_state
from test_format import rebuild_every_version
from syncd.archive import crypto
from syncd.archive.manifest import Manifest, ObjectRef, Version

SOURCE = "chat.db"
SCHEMA = """
CREATE TABLE rcontact(username TEXT PRIMARY KEY, nickname TEXT, type INT);
CREATE TABLE message(msgId INTEGER PRIMARY KEY, talker TEXT, content TEXT, createTime INTEGER);
CREATE INDEX messageTalkerIndex ON message(talker);
CREATE TABLE chatroom(name TEXT PRIMARY KEY, members TEXT) WITHOUT ROWID;
INSERT INTO rcontact VALUES ('wxid_alice', 'Alice', 3), ('wxid_bob', 'Bob', 3);
INSERT INTO message VALUES (1, 'wxid_alice', 'hello', 1700000000000);
INSERT INTO chatroom VALUES ('42@chatroom', 'wxid_alice;wxid_bob');
"""
SECOND = "INSERT INTO message VALUES (2, 'wxid_bob', 'see you', 1700000001000)"


# -- what an attacker holds and writes -----------------------------------------------------------


class Victim:
    """Another database on the machine, which nothing a restore reads may touch."""

    def __init__(self, folder: Path):
        folder.mkdir()
        self.folder = folder
        self.path = folder / "victim.db"
        db = apsw.Connection(str(self.path))
        db.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT);"
                   "INSERT INTO message(body) VALUES ('keep'), ('me'), ('please')")
        db.close()
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(self.folder.iterdir())}

    def untouched(self) -> bool:
        return self.snapshot() == self.before


def archived(tmp_path: Path, pm) -> list[dict[str, bytes]]:
    """A phone synced twice to a plain folder: each version's objects as plain bytes (kind -> bytes)."""
    (tmp_path / "legit").mkdir()
    phone = Harness(tmp_path / "legit", pm)
    phone.execute(SCHEMA)
    phone.sync()
    phone.execute(SECOND)
    phone.sync()
    archive = phone.archive()
    contents = []
    for version in archive.manifest().versions:
        objects = {}
        for kind in ("base", "delta"):
            ref = getattr(version, kind)
            if ref:
                out = tmp_path / "plain.tmp"
                archive.fetch(ref, out)
                objects[kind] = out.read_bytes()
                out.unlink()
        contents.append(objects)
    return contents


def edit_base(base: bytes, scratch: Path, sql: str, *params) -> bytes:
    """The base (a mirror file) after running `sql` on it."""
    path = scratch / "forged-base.db"
    path.write_bytes(base)
    db = apsw.Connection(str(path))
    db.execute("PRAGMA journal_mode=DELETE").fetchall()
    db.execute(sql, params).fetchall()
    db.close()
    forged = path.read_bytes()
    path.unlink()
    return forged


def rechain(versions: list[Version]) -> list[Version]:
    """Recompute every parent and hash, as a forger does: the chain proves order, not authorship."""
    out, parent = [], None
    for v in versions:
        v = replace(v, parent=parent)
        v = replace(v, hash=v.chained_hash())
        out.append(v)
        parent = v.hash
    return out


def publish(target: Path, contents: list[dict[str, bytes]], recipients=None, *, tweak=None) -> None:
    """Write `contents` as an archive of SOURCE on a folder target: plain, or sealed to `recipients`.

    `tweak(versions)` may alter the versions before the chain is recomputed.
    """
    folder = crypto.folder_id(SOURCE, recipients) if recipients else SOURCE
    objects = target / folder / "objects"
    objects.mkdir(parents=True)
    versions = []
    for number, kinds in enumerate(contents, start=1):
        refs = {}
        for kind, plain in kinds.items():
            frame = zstandard.ZstdCompressor().compress(plain)
            digest = hashlib.sha256(frame).hexdigest()
            if recipients:
                sealed = io.BytesIO()
                _, size, sha = crypto.encrypt(io.BytesIO(frame), sealed, recipients)
                ref = ObjectRef(f"objects/{number:010d}-{kind}-{sha[:32]}.zst.age", size, sha, "zstd+age", digest)
                data = sealed.getvalue()
            else:
                ref = ObjectRef(f"objects/{number:010d}-{kind}-{digest[:32]}.zst", len(frame), digest, "zstd")
                data = frame
            (target / folder / ref.name).write_bytes(data)
            refs[kind] = ref
        versions.append(Version(number, "2026-01-0%dT10:00:00.000+00:00" % number, None,
                                {"added": 1, "changed": 0, "deleted": 0, "schema": 0}, **refs))
    if tweak:
        versions = tweak(versions)
    raw = Manifest(SOURCE, tuple(rechain(versions))).to_bytes()
    if recipients:
        (target / folder / "manifest.age").write_bytes(crypto.seal_bytes(raw, recipients))
    else:
        (target / folder / "manifest.json").write_bytes(raw)


@pytest.fixture
def world(tmp_path, pm) -> SimpleNamespace:
    """A legit two-version archive's contents, a victim database, an empty target and the owner's keys."""
    contents = archived(tmp_path, pm)
    target = tmp_path / "nas"
    target.mkdir()
    owner = tmp_path / "owner.txt"
    recipients = crypto.parse_recipients([crypto.keygen(owner)])
    return SimpleNamespace(contents=contents, target=target, victim=Victim(tmp_path / "elsewhere"), owner=owner,
                           recipients=recipients, out=tmp_path / "restored.db")


def restore_cli(world: SimpleNamespace, encrypted: bool, *extra) -> subprocess.CompletedProcess:
    identity = ["--identity", world.owner] if encrypted else []
    return run_syncd("restore", world.out, "--from", world.target, *identity, *extra)


# -- item 1: SQL from the archive is checked, never run as given -------------------------------------

SCHEMA_ROW = 'UPDATE "syncd:schema" SET sql = ? WHERE name = ?'
PRAGMA_ROW = 'UPDATE "syncd:pragma" SET value = ? WHERE name = ?'


def attack(victim: Path) -> str:
    """Statements that empty the victim's table, once out of the schema entry's statement."""
    return f"ATTACH '{victim}' AS v; DELETE FROM v.message"


def forged_bases(victim: Path) -> dict[str, tuple[str, tuple]]:
    """Edits of the base's own rows that smuggle SQL against `victim`: (SQL on the base, its parameters)."""
    evil = attack(victim)
    index = "CREATE INDEX messageTalkerIndex ON message(talker)"
    return {
        # The example: an index entry that ends its statement and its transaction.
        "index entry, more statements": (SCHEMA_ROW, (f"{index}; COMMIT; {evil}; BEGIN", "messageTalkerIndex")),
        # One statement, but not the kind the entry claims.
        "index entry, an ATTACH": (SCHEMA_ROW, (f"ATTACH '{victim}' AS v", "messageTalkerIndex")),
        "table entry, a DELETE": (SCHEMA_ROW, ("DELETE FROM message", "rcontact")),
        "index entry, a view": (SCHEMA_ROW, ("CREATE VIEW leak AS SELECT * FROM message", "messageTalkerIndex")),
        # The right kind, in another database.
        "index entry, in temp": (SCHEMA_ROW, ("CREATE INDEX temp.messageTalkerIndex ON message(talker)",
                                               "messageTalkerIndex")),
        "trigger entry, a temp trigger": (
            'INSERT INTO "syncd:schema" VALUES (?, \'trigger\', \'message\', ?, 99, NULL)',
            ("spy", "CREATE TEMP TRIGGER spy AFTER INSERT ON main.message BEGIN SELECT 1; END")),
        # A setting that is not a number.
        "page size": (PRAGMA_ROW, (f"4096; {evil}", "page_size")),
        "user_version": (PRAGMA_ROW, (f"0; {evil}", "user_version")),
        # A table key's collation, written into the mirror's CREATE TABLE when version 2 reshapes it.
        "shape collation": ('UPDATE "syncd:schema" SET shape = json_set(shape, \'$.key[0][1]\', ?) WHERE name = ?',
                            (f'BINARY)) WITHOUT ROWID; {evil}; CREATE TABLE "t:x"(a, PRIMARY KEY(a', "chatroom")),
        # A shape syncd never records: no name is left to write the rows' rowids.
        "shape without rowid": ('UPDATE "syncd:schema" SET shape = ? WHERE name = ?',
                                (json.dumps({"columns": ["rowid", "_rowid_", "OID"], "key": None}), "message")),
        # Objects a mirror never holds: a trigger that rewrites rows as version 2 is applied.
        "mirror trigger": ('CREATE TRIGGER evil AFTER INSERT ON "t:message" BEGIN '
                           'INSERT INTO "t:rcontact" VALUES (\'wxid_mallory\', \'Mallory\', 3); END', ()),
        "mirror view": ('CREATE VIEW "t:ghost" AS SELECT 1', ()),
    }


FORGERIES = list(forged_bases(Path("victim.db")))


def one_error(result) -> str:
    """A refused command: exit 1 or 2, `error: …` and at most a hint, no traceback."""
    assert result.returncode in (1, 2), result.stdout + result.stderr
    lines = error_lines(result.stderr, hint=len(result.stderr.splitlines()) == 2)
    return lines[0]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_the_same_archive_unforged_restores(world, tmp_path, encrypted):
    """The control: what the forgeries start from restores, so each refusal is the forgery's."""
    publish(world.target, world.contents, world.recipients if encrypted else None)
    assert restore_cli(world, encrypted).returncode == 0
    assert logical_state(world.out) == logical_state(tmp_path / "legit" / "phone" / SOURCE)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("how", FORGERIES)
def test_a_forged_base_runs_nothing_and_is_refused(world, tmp_path, encrypted, how):
    sql, params = forged_bases(world.victim.path)[how]
    base = edit_base(world.contents[0]["base"], tmp_path, sql, *params)
    publish(world.target, [{"base": base}, world.contents[1]], world.recipients if encrypted else None)
    result = restore_cli(world, encrypted)
    assert world.victim.untouched(), f"{how}: the restore changed another database"
    one_error(result)
    assert not world.out.exists()


def forged_delta(base: bytes, scratch: Path, sql: str, *params) -> bytes:
    """A changeset that runs `sql` on the mirror a base holds: what a forger ships as a delta."""
    path = scratch / "forged-delta.db"
    path.write_bytes(base)
    db = apsw.Connection(str(path))
    session = apsw.Session(db, "main")
    session.attach()
    db.execute(sql, params).fetchall()
    changeset = session.changeset()
    session.close()
    db.close()
    path.unlink()
    return changeset


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("how", ["schema row", "garbage", "mirror table"])
def test_a_forged_delta_runs_nothing_and_is_refused(world, tmp_path, encrypted, how):
    base = world.contents[0]["base"]
    delta = {
        "schema row": lambda: forged_delta(base, tmp_path, SCHEMA_ROW,
                                           f"CREATE INDEX i ON message(talker); {attack(world.victim.path)}",
                                           "messageTalkerIndex"),
        "garbage": lambda: os.urandom(64) + world.contents[1]["delta"],
        # A shape naming a column twice: the mirror would be built with a CREATE TABLE that fails.
        "mirror table": lambda: forged_delta(base, tmp_path, 'UPDATE "syncd:schema" SET shape = ? WHERE name = ?',
                                             json.dumps({"columns": ["a", "A"], "key": None}), "message"),
    }[how]()
    publish(world.target, [{"base": base}, {"delta": delta}], world.recipients if encrypted else None)
    result = restore_cli(world, encrypted)
    assert world.victim.untouched()
    assert "version 2" in one_error(result)
    assert not world.out.exists()
    # The versions before it still restore.
    assert restore_cli(world, encrypted, "--version", "1").returncode == 0


# -- item 17: manifest fields are checked as they are decoded ---------------------------------------

def _base(v: Version, **changes) -> Version:
    return replace(v, base=replace(v.base, **changes))


BAD_FIELDS = {
    # (b) object names become paths and URLs
    "name with ..": lambda v: _base(v, name="objects/../../elsewhere/victim.db"),
    "absolute name": lambda v: _base(v, name="/etc/passwd"),
    "name of another kind": lambda v: _base(v, name="manifest.json"),
    # (d) a time that isn't ISO 8601 with an offset
    "time in words": lambda v: replace(v, time="yesterday"),
    "time without offset": lambda v: replace(v, time="2026-01-01T10:00:00"),
    # every other field
    "size as text": lambda v: _base(v, size=str(v.base.size)),
    "negative size": lambda v: _base(v, size=-1),
    "sha256 not hex": lambda v: _base(v, sha256="z" * 64),
    "unknown codec": lambda v: _base(v, codec="rot13"),
    "rows not counts": lambda v: replace(v, rows={"added": "many", "changed": 0, "deleted": 0}),
    "rows missing": lambda v: replace(v, rows={}),
    "number as text": lambda v: replace(v, number="1"),
}


@pytest.mark.parametrize(("how", "encrypted"), [(how, False) for how in BAD_FIELDS]
                         + [("name with ..", True), ("time in words", True)])
def test_a_bad_manifest_field_is_one_line_naming_the_manifest(world, encrypted, how):
    def tweak(versions):
        return [BAD_FIELDS[how](versions[0])] + versions[1:]

    publish(world.target, world.contents, world.recipients if encrypted else None, tweak=tweak)
    manifest = "manifest.age" if encrypted else "manifest.json"
    identity = ["--identity", world.owner] if encrypted else []
    for command in (["log", "--from", world.target, *identity],
                    ["restore", world.out, "--from", world.target, "--at", "2026-01-03T00:00Z", *identity]):
        line = one_error(run_syncd(*command))
        assert manifest in line and "version 1" in line, line
    # verify lists what it found wrong, the manifest first.
    result = run_syncd("verify", "--from", world.target, *identity)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert manifest in result.stdout + result.stderr, result.stdout + result.stderr
    assert world.victim.untouched()
    assert not world.out.exists()


# -- item 17 (c): any source column name can be archived -----------------------------------------

MIRROR_NAMES = """
CREATE TABLE message(msgId INTEGER PRIMARY KEY, "syncd:rowid" TEXT, content TEXT);
CREATE TABLE shouting("SYNCD:ROWID", "syncd:syncd:rowid", "Syncd:Syncd:Syncd:RowId", body);
CREATE TABLE keyed("syncd:rowid" TEXT PRIMARY KEY, "syncd:schema", v) WITHOUT ROWID;
INSERT INTO message VALUES (1, 'mine', 'hello'), (2, NULL, 'world');
INSERT INTO shouting VALUES (1, 2, 3, 'a'), ('x', 'y', 'z', 'b');
INSERT INTO keyed VALUES ('k1', 's', 1), ('k2', NULL, 2.5);
"""
MIRROR_NAME_CHANGES = [
    """UPDATE message SET "syncd:rowid" = 'changed' WHERE msgId = 2;
       INSERT INTO shouting VALUES (4, 5, 6, 'c'); DELETE FROM keyed WHERE "syncd:rowid" = 'k1'""",
    # A column added under the mirror's key name reshapes the mirror table.
    """ALTER TABLE shouting ADD COLUMN "syncd:syncd:syncd:syncd:rowid" DEFAULT 7;
       UPDATE shouting SET "syncd:syncd:syncd:syncd:rowid" = 8 WHERE body = 'a'""",
    # A rebuild: the key changes from rowid to a primary key.
    """CREATE TABLE m2("syncd:rowid" TEXT PRIMARY KEY, content) WITHOUT ROWID;
       INSERT INTO m2 SELECT coalesce("syncd:rowid", msgId), content FROM message;
       DROP TABLE message; ALTER TABLE m2 RENAME TO message""",
]


def test_columns_named_like_the_mirrors_own_round_trip(harness, tmp_path):
    harness.execute(MIRROR_NAMES)
    assert harness.sync().version.number == 1
    for sql in MIRROR_NAME_CHANGES:
        harness.execute(sql)
        assert harness.sync().version is not None
    harness.check_all_versions()
    # And by hand, as docs/format.md tells.
    folder, by_hand = harness.target / SOURCE, tmp_path / "by-hand"
    by_hand.mkdir()
    rebuild_every_version(json.loads((folder / "manifest.json").read_text()), lambda ref, _work: folder / ref["name"],
                          harness.expected, by_hand)



# -- item 17 (a): a full disk is one line, and loses nothing ----------------------------------------

DISK = 1 << 20


class SmallDisk:
    """A 1 MiB folder: a tmpfs where this process may mount one (root), else a file size limit."""

    def __init__(self, folder: Path):
        folder.mkdir()
        self.folder = folder
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "tmpfs", str(folder)],
                                 capture_output=True)
        self.mounted = mounted.returncode == 0

    def run(self, *args) -> subprocess.CompletedProcess:
        """`syncd` as a real process that can't write more than the disk holds."""
        limit = None if self.mounted else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (DISK, DISK)))
        return subprocess.run([sys.executable, "-m", "syncd", *map(str, args)], capture_output=True, text=True,
                              timeout=120, preexec_fn=limit)

    def grow(self) -> None:
        """Room again: a bigger tmpfs (the limit applies only inside `run`)."""
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(self.folder)], check=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path / "small")
    yield disk
    disk.close()


def big_phone(harness) -> None:
    """A source three times the disk: random bytes don't compress."""
    harness.execute("CREATE TABLE message(msgId INTEGER PRIMARY KEY, content BLOB)")
    db = harness.connect()
    with db:
        db.executemany("INSERT INTO message(content) VALUES (?)", [(os.urandom(1000),) for _ in range(3 * DISK // 1000)])
    db.close()


def test_a_full_state_disk_is_one_line_and_the_next_pass_recovers(harness, small_disk):
    big_phone(harness)
    state = small_disk.folder / "state"
    result = small_disk.run("sync", harness.source, "--to", harness.target, "--state", state)
    assert "no space" in one_error(result)
    assert not list(harness.target.iterdir()), "a target got part of a version that was never committed"
    small_disk.grow()
    result = run_syncd("sync", harness.source, "--to", harness.target, "--state", state)
    assert result.returncode == 0, result.stderr
    assert logical_state(harness.restore()) == logical_state(harness.source)


def test_restoring_into_a_full_disk_is_one_line(harness, small_disk):
    big_phone(harness)
    harness.sync()
    out = small_disk.folder / "restored.db"
    result = small_disk.run("restore", out, "--from", harness.target)
    assert "no space" in one_error(result)
    assert not list(small_disk.folder.iterdir()), "the failed restore left files behind"
    small_disk.grow()
    assert run_syncd("restore", out, "--from", harness.target).returncode == 0
    assert logical_state(out) == logical_state(harness.source)


def test_a_base_that_holds_another_version_is_refused_in_one_line(world):
    """Version 2 given version 1's base as its own: the mirror it rebuilds says version 1."""
    publish(world.target, [world.contents[0], {**world.contents[1], "base": world.contents[0]["base"]}])
    result = restore_cli(world, False)
    assert "holds version 1" in one_error(result)
    assert not world.out.exists()
