"""The archive format is open: docs/format.md's manual recovery really rebuilds every version."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from logical import logical_state
from syncd.archive import crypto
from syncd.delivery.target import Target

RECOVER = Path(__file__).resolve().parents[1] / "docs" / "recover.py"

CHANGES = [
    "INSERT INTO message VALUES (3, 'wxid_b', '第三条', x'00ff', 3.25)",
    "UPDATE message SET body = '\"B\" 撤回了一条消息', data = NULL WHERE id = 2",
    "ALTER TABLE message ADD COLUMN flag INT DEFAULT 7",
    "INSERT INTO settings VALUES ('Theme', 'dark'); PRAGMA user_version = 5",
    "DELETE FROM message WHERE talker = 'wxid_a'; CREATE INDEX byTalker ON message(talker)",
    "CREATE VIRTUAL TABLE search USING fts5(body); INSERT INTO search VALUES ('hello 你好')",
    "ALTER TABLE message DROP COLUMN data; PRAGMA journal_mode = WAL",
    "INSERT INTO message(id, talker, body) VALUES (1, 'wxid_a', 'reused id')",
]


def decompress(src: Path, dst: Path) -> None:
    """What `zstd -d src -o dst` does (the CLI is used when installed)."""
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-d", str(src), "-o", str(dst)], check=True)
    else:
        with open(src, "rb") as f, open(dst, "wb") as out:
            zstandard.ZstdDecompressor().copy_stream(f, out)


def archive(harness, sync):
    harness.execute(
        "CREATE TABLE message(id INTEGER PRIMARY KEY, talker TEXT, body TEXT, data BLOB, score);"
        "CREATE TABLE settings(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "INSERT INTO message VALUES (1, 'wxid_a', 'hi', NULL, 1), (2, 'wxid_b', 'yo', x'01', 2.0)"
    )
    sync()
    for sql in CHANGES:
        harness.execute(sql)
        assert sync().version is not None
    return harness


@pytest.fixture
def archived(harness):
    return archive(harness, harness.sync)


def test_every_version_rebuilds_by_hand_with_the_standard_library(archived, tmp_path):
    folder = archived.target / "chat.db"
    manifest = json.loads((folder / "manifest.json").read_text())

    def check(ref: dict, work: Path) -> Path:
        stored = folder / ref["name"]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == ref["sha256"]
        return stored

    rebuild_every_version(manifest, check, archived.expected, tmp_path)


@pytest.mark.skipif(shutil.which("age") is None,
                    reason="the stock `age` tool is not installed (.ci/run installs it: apt-get install age)")
def test_an_encrypted_target_rebuilds_by_hand_with_age(harness, tmp_path):
    """docs/format.md's recovery of an encrypted target: `age -d`, then the same steps."""
    key = tmp_path / "key.txt"
    to = [Target(str(harness.target), [crypto.keygen(key)])]
    archive(harness, lambda: harness.sync(to))
    (folder,) = [p for p in harness.target.iterdir() if p.name != "_syncd"]  # _syncd: see syncd.archive.claims

    def age_decrypt(src: Path, dst: Path) -> Path:
        subprocess.run(["age", "-d", "-i", str(key), "-o", str(dst), str(src)], check=True)
        return dst

    manifest = json.loads(age_decrypt(folder / "manifest.age", tmp_path / "manifest.json").read_text())
    assert manifest["source"] == "chat.db"

    def check(ref: dict, work: Path) -> Path:
        stored = folder / ref["name"]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == ref["sha256"]
        frame = age_decrypt(stored, work / Path(ref["name"]).stem)  # …-<sha256>.zst
        assert hashlib.sha256(frame.read_bytes()).hexdigest() == ref["plain_sha256"]
        return frame

    rebuild_every_version(manifest, check, harness.expected, tmp_path)


def rebuild_every_version(manifest: dict, check, expected: dict, tmp_path: Path) -> None:
    """Rebuild each version from its base and deltas; `check(ref, work)` gives an object's zstd file."""
    versions = manifest["versions"]
    for wanted in versions:
        n = wanted["version"]
        base_at = max(v["version"] for v in versions[:n] if v.get("base"))
        work = tmp_path / f"v{n}"
        work.mkdir()
        objects = [versions[base_at - 1]["base"]] + [v["delta"] for v in versions[base_at:n]]
        files = []
        for i, ref in enumerate(objects):
            files.append(work / ("mirror.db" if i == 0 else f"{i}.changeset"))
            decompress(check(ref, work), files[-1])
        # -I -S: isolated, no site-packages, so neither syncd nor apsw can help.
        result = subprocess.run([sys.executable, "-I", "-S", str(RECOVER), *map(str, files[:1]),
                                 str(work / "restored.db"), *map(str, files[1:])],
                                capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "ok"
        assert logical_state(work / "restored.db") == expected[n], f"version {n} differs"


def test_tables_change_shape_only_at_a_base(archived):
    """So a manual rebuild never has to reshape tables between a base and its deltas."""
    versions = json.loads((archived.target / "chat.db" / "manifest.json").read_text())["versions"]
    reshaping = [2 + CHANGES.index(sql) for sql in CHANGES if "COLUMN" in sql or "CREATE VIRTUAL" in sql]
    assert all(versions[n - 1].get("base") for n in reshaping)
