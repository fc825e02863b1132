"""Bad input gets a clear one-line error, a non-zero exit, and loses nothing.

Exit codes (see syncd/cli.py): 2 for a bad source database or a usage error,
1 for failures (a target, an archive). A bad source must never reach the local
archive or any target: an empty or half-copied drop of the phone's file must
never become a version that deletes everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner

from logical import logical_state
from syncd.cli import main

NAME = "chat.db"
ROOT = os.geteuid() == 0

SCHEMA = """
CREATE TABLE rcontact(username TEXT PRIMARY KEY, nickname TEXT, type INT);
CREATE TABLE message(msgId INTEGER PRIMARY KEY, talker TEXT, content TEXT, type INT, createTime INTEGER);
CREATE INDEX messageTalkerIndex ON message(talker);
INSERT INTO rcontact VALUES ('wxid_alice', '爱丽丝', 3), ('wxid_bob', 'Bob', 3), ('123@chatroom', '家庭群', 2);
"""


# -- helpers -----------------------------------------------------------------------


def make_db(path: Path, messages: int = 200) -> Path:
    """A chat database big enough (~15 pages) that half of it is clearly truncated.

    Message bodies are random hex, so the compressed base dwarfs any later delta
    and versions 2 and 3 are plain deltas (restoring them needs the base of 1).
    """
    db = apsw.Connection(str(path))
    try:
        db.execute(SCHEMA)
        with db:
            for i in range(1, messages + 1):
                talker = ("wxid_alice", "wxid_bob", "123@chatroom")[i % 3]
                db.execute("INSERT INTO message VALUES (?, ?, ?, 1, ?)",
                           (i, talker, os.urandom(100).hex(), 1_700_000_000_000 + i))
    finally:
        db.close()
    return path


def execute(path: Path, sql: str, *params) -> None:
    db = apsw.Connection(str(path))
    try:
        db.execute(sql, params).fetchall()
    finally:
        db.close()


def cli(*args, env: dict | None = None):
    """Run the `syncd` command in-process; any exception but an exit is a traceback, hence a failure."""
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))
        pytest.fail(f"syncd {' '.join(map(str, args))} raised instead of reporting:\n{trace}")
    return result


def run_syncd(*args, **kwargs) -> subprocess.CompletedProcess:
    """Run `syncd` as a real process."""
    return subprocess.run([sys.executable, "-m", "syncd", *map(str, args)], capture_output=True, text=True,
                          timeout=60, **kwargs)


def error_lines(stderr: str, *, hint: bool, exact: bool = True) -> list[str]:
    """The stderr of a refused command: exactly `error: …` (and `hint: …`), nothing else.

    Not `exact`: only that it starts with `error:` and ends with the hint (for a known bug).
    """
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert lines and lines[0].startswith("error: "), stderr
    if not exact:
        assert not hint or lines[-1].startswith("hint: "), stderr
        return lines
    if hint:
        assert len(lines) == 2 and lines[1].startswith("hint: ") and len(lines[1]) > len("hint: "), stderr
    else:
        assert len(lines) == 1, stderr
    return lines


def contents(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` with its bytes (empty if the folder doesn't exist)."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fingerprint(folder: Path) -> dict[str, tuple]:
    """Name, size, mtime and content hash of every entry in `folder`, and of the folder itself."""
    found = {".": (folder.stat().st_mtime_ns,)}
    for p in sorted(folder.iterdir()):
        st = p.stat()
        found[p.name] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return found


class Setup:
    """A phone folder, a state dir and an empty folder target."""

    def __init__(self, root: Path):
        self.root = root
        self.phone = root / "phone"
        self.phone.mkdir()
        self.source = self.phone / NAME
        self.state = root / "state"
        self.target = root / "nas"
        self.target.mkdir()
        self.archive = self.state / "sources" / NAME / "archive"

    def sync(self, *extra, source: Path | None = None, targets: list | None = None):
        to = [a for t in (targets if targets is not None else [self.target]) for a in ("--to", t)]
        return cli("sync", source or self.source, *to, "--state", self.state, *extra)

    def manifest(self, target: Path | None = None) -> dict:
        return json.loads(((target or self.target) / NAME / "manifest.json").read_text())


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


@pytest.fixture
def archived(setup):
    """A target holding three versions: the initial database, a recall, a deleted chat."""
    make_db(setup.source)
    setup.expected = {}
    for sql in (None,
                "UPDATE message SET type = 10000, content = 'recalled' WHERE msgId = 1",
                "DELETE FROM message WHERE talker = '123@chatroom'"):
        if sql:
            execute(setup.source, sql)
        result = setup.sync()
        assert result.exit_code == 0, result.output
        setup.expected[len(setup.expected) + 1] = logical_state(setup.source)
    manifest = setup.manifest()
    assert [v["version"] for v in manifest["versions"]] == [1, 2, 3]
    assert "base" not in manifest["versions"][1], "precondition: version 2 must be a plain delta"
    setup.objects = {v["version"]: v.get("delta", v.get("base"))["name"] for v in manifest["versions"]}
    return setup


# -- bad source databases ----------------------------------------------------------


def missing(src: Path) -> None:
    pass


def directory(src: Path) -> None:
    src.mkdir()
    make_db(src / "inside.db")


def empty(src: Path) -> None:
    src.write_bytes(b"")


def text(src: Path) -> None:
    src.write_text("these are my chats, exported as text\n" * 200)


def random_bytes(src: Path) -> None:
    src.write_bytes(os.urandom(16384))


def truncated(src: Path) -> None:
    make_db(src)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])


def garbage_after_page_one(src: Path) -> None:
    """Header and schema page intact, page count right, every other page noise."""
    make_db(src)
    data = src.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) >= 4 * page_size
    src.write_bytes(data[:page_size] + os.urandom(len(data) - page_size))


BAD_SOURCES = {
    # case: (make it, words the error line must hold)
    "missing": (missing, ["does not exist"]),
    "a directory": (directory, ["not a file"]),
    "empty": (empty, ["empty", "0 bytes"]),
    "a text file": (text, ["not a sqlite database"]),
    "random bytes": (random_bytes, ["encrypted"]),
    "truncated to half": (truncated, ["truncated"]),
    "garbage after page 1": (garbage_after_page_one, ["damaged"]),
}


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_bad_source_is_refused_and_nothing_is_written(setup, case):
    make, words = BAD_SOURCES[case]
    make(setup.source)
    result = setup.sync()
    assert result.exit_code == 2, result.output
    # The damaged case's error spans several lines: see test_damaged_source_error_is_one_line.
    line = error_lines(result.stderr, hint=True, exact=case != "garbage after page 1")[0]
    assert str(setup.source) in line
    for word in words:
        assert word in line.lower(), line
    assert result.stdout == ""
    assert contents(setup.target) == {}
    assert contents(setup.archive) == {}
    assert not (setup.state / "sources" / NAME / "mirror.db").exists()


def test_damaged_source_error_is_one_line(setup):
    garbage_after_page_one(setup.source)
    result = setup.sync()
    assert result.exit_code == 2
    error_lines(result.stderr, hint=True)


def test_bad_source_in_a_real_process(setup):
    """The same, through a real `syncd` process: two lines on stderr, exit 2, nothing written."""
    random_bytes(setup.source)
    proc = run_syncd("sync", setup.source, "--to", setup.target, "--state", setup.state)
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr, hint=True)
    assert "encrypted" in lines[0] and "decrypt" in lines[1]
    assert proc.stdout == ""
    assert contents(setup.target) == {} and contents(setup.archive) == {}


# Root reads every file whatever its mode through these two capabilities. Without them it is held to
# mode bits like anyone else, yet still reads what it owns: the interpreter and a venv in a private
# (0700) folder, which another user, such as 'nobody', could not (issue 10, item 18).
READ_ANY_FILE = "-dac_override,-dac_read_search"


def _syncd_without_read_any_file(*args) -> dict:
    """Run `syncd` as a real process, as root without the capabilities that ignore file modes."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return {"setup": "setpriv (util-linux) is not installed"}
    command = [setpriv, f"--inh-caps={READ_ANY_FILE}", f"--bounding-set={READ_ANY_FILE}", "--",
               sys.executable, "-m", "syncd", *map(str, args)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if proc.returncode and proc.stderr.startswith("setpriv:"):
        return {"setup": proc.stderr.strip()}
    return {"code": proc.returncode, "stderr": proc.stderr,
            "exception": proc.stderr if "Traceback" in proc.stderr else None}


@pytest.fixture
def unreadable(tmp_path):
    """Sync a source its reader may not read (as root, without the capabilities that ignore chmod 000).

    Yields the setup and {"code", "stderr", "exception"} of the command.
    """
    setup = Setup(tmp_path)
    make_db(setup.source)
    setup.source.chmod(0)
    args = ("sync", setup.source, "--to", setup.target, "--state", setup.state)
    if ROOT:
        answer = _syncd_without_read_any_file(*args)
        if "setup" in answer:
            pytest.skip(f"running as root and can't drop the capability to read any file: {answer['setup']}")
    else:
        result = CliRunner().invoke(main, [str(a) for a in args])
        exception = result.exception if not isinstance(result.exception, SystemExit) else None
        answer = {"code": result.exit_code, "stderr": result.stderr,
                  "exception": "".join(traceback.format_exception(exception)) if exception else None}
    yield setup, answer


def test_unreadable_source(unreadable):
    setup, answer = unreadable
    assert answer["exception"] is None, answer["exception"]
    assert answer["code"] == 2, answer
    assert "Traceback" not in answer["stderr"]
    assert str(setup.source) in answer["stderr"]
    assert "not readable" in answer["stderr"] or "can't be read" in answer["stderr"], answer["stderr"]
    assert contents(setup.target) == {} and contents(setup.archive) == {}


def test_unreadable_source_error_is_one_syncd_line(unreadable):
    setup, answer = unreadable
    assert answer["code"] == 2
    line = error_lines(answer["stderr"], hint=True)[0]
    assert str(setup.source) in line and "can't be read" in line


@pytest.mark.parametrize("drop", ["empty", "truncated copy"])
def test_bad_drop_after_a_good_version_changes_nothing(setup, drop):
    make_db(setup.source)
    assert setup.sync().exit_code == 0
    target, archive = contents(setup.target), contents(setup.archive)
    assert any(name.endswith(".zst") for name in target) and f"{NAME}/manifest.json" in archive
    good = setup.source.read_bytes()
    setup.source.write_bytes(b"" if drop == "empty" else good[: len(good) // 2])

    result = setup.sync()
    assert result.exit_code == 2, result.output
    line = error_lines(result.stderr, hint=True)[0]
    assert ("empty" if drop == "empty" else "truncated") in line
    assert contents(setup.target) == target
    assert contents(setup.archive) == archive
    assert [v["version"] for v in setup.manifest()["versions"]] == [1]

    # Once the whole file is back, syncing carries on as if nothing happened.
    setup.source.write_bytes(good)
    result = setup.sync()
    assert result.exit_code == 0 and "no change since version 1" in result.stdout


# -- target problems: exit 1, the version stays queued locally --------------------


def _failed_target_lines(result, target: Path, problem: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 1 and str(target) in failed[0] and problem in failed[0], result.stderr
    assert lines[-1].startswith("error: ") and "queued locally" in lines[-1], result.stderr


def _local_head(setup: Setup) -> int:
    manifest = json.loads((setup.archive / NAME / "manifest.json").read_text())
    return manifest["versions"][-1]["version"]


def test_missing_target_gets_the_queued_version_once_it_exists(setup):
    make_db(setup.source)
    missing_target = setup.root / "unmounted"
    result = setup.sync(targets=[missing_target])
    _failed_target_lines(result, missing_target, "does not exist")
    assert not missing_target.exists(), "a missing target folder must not be created"
    assert _local_head(setup) == 1  # queued locally

    missing_target.mkdir()
    result = setup.sync(targets=[missing_target])  # the phone's file didn't change
    assert result.exit_code == 0, result.output
    assert "no change since version 1" in result.stdout
    assert [v["version"] for v in setup.manifest(missing_target)["versions"]] == [1]
    assert cli("verify", "--from", missing_target).exit_code == 0
    out = setup.root / "restored.db"
    assert cli("restore", "--from", missing_target, out).exit_code == 0
    assert logical_state(out) == logical_state(setup.source)


def test_target_that_is_a_file_gets_the_version_once_it_is_a_folder(setup):
    make_db(setup.source)
    not_a_folder = setup.root / "share"
    not_a_folder.write_bytes(b"not a folder")
    result = setup.sync(targets=[not_a_folder])
    _failed_target_lines(result, not_a_folder, "not a folder")
    assert not_a_folder.read_bytes() == b"not a folder"
    assert _local_head(setup) == 1

    not_a_folder.unlink()
    not_a_folder.mkdir()
    result = setup.sync(targets=[not_a_folder])
    assert result.exit_code == 0, result.output
    assert [v["version"] for v in setup.manifest(not_a_folder)["versions"]] == [1]


def test_unknown_scheme_is_named(setup):
    make_db(setup.source)
    result = setup.sync(targets=["ftp://x/y"])
    assert result.exit_code == 2, result.output  # a usage error (issue 10, item 12)
    line, hint = error_lines(result.stderr, hint=True)
    assert "'ftp'" in line
    assert "file://" in hint  # what is known instead
    assert contents(setup.target) == {}


def test_one_missing_target_does_not_hold_back_the_other(setup):
    make_db(setup.source)
    missing_target = setup.root / "offline"
    result = setup.sync(targets=[missing_target, setup.target])
    _failed_target_lines(result, missing_target, "does not exist")
    assert f"{setup.target}: has version 1" in result.stdout
    assert [v["version"] for v in setup.manifest()["versions"]] == [1]

    execute(setup.source, "INSERT INTO message VALUES (9999, 'wxid_bob', 'later', 1, 1)")
    result = setup.sync("--json", targets=[missing_target, setup.target])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["version"] == 2
    assert [(t["location"], t["ok"]) for t in report["targets"]] == [(str(missing_target), False),
                                                                     (str(setup.target), True)]
    assert "does not exist" in report["targets"][0]["error"] and report["targets"][0]["hint"]
    assert [v["version"] for v in setup.manifest()["versions"]] == [1, 2]

    missing_target.mkdir()
    result = setup.sync(targets=[missing_target, setup.target])
    assert result.exit_code == 0, result.output
    assert [v["version"] for v in setup.manifest(missing_target)["versions"]] == [1, 2]


# -- restore problems -----------------------------------------------------------------


def test_restore_of_a_version_that_does_not_exist(archived, tmp_path):
    out = tmp_path / "out.db"
    result = cli("restore", "--from", archived.target, "--version", 99, out)
    assert result.exit_code == 1
    line, hint = error_lines(result.stderr, hint=True)
    assert "version 99" in line and "does not exist" in line
    assert "1 to 3" in hint
    assert not out.exists()


def test_restore_refuses_to_overwrite_without_force(archived, tmp_path):
    out = tmp_path / "out.db"
    out.write_bytes(b"precious")
    result = cli("restore", "--from", archived.target, out)
    assert result.exit_code == 2  # a usage error (issue 10, item 12)
    line, hint = error_lines(result.stderr, hint=True)
    assert str(out) in line and "already exists" in line and "--force" in hint
    assert out.read_bytes() == b"precious"


def test_restore_with_force_replaces_output_and_its_stale_wal(archived, tmp_path):
    out = tmp_path / "out.db"
    out.write_bytes(b"precious")
    stale = [Path(f"{out}-wal"), Path(f"{out}-shm")]
    for path in stale:
        path.write_bytes(b"stale companion of the old file")
    result = cli("restore", "--from", archived.target, "--version", 2, "--force", out)
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in stale)
    assert logical_state(out) == archived.expected[2]


def test_restore_from_a_folder_without_archive(tmp_path):
    empty_target = tmp_path / "empty"
    empty_target.mkdir()
    out = tmp_path / "out.db"
    result = cli("restore", "--from", empty_target, out)
    assert result.exit_code == 1
    line, _ = error_lines(result.stderr, hint=True)
    assert str(empty_target) in line and "no syncd archive" in line
    assert not out.exists()


def test_restore_from_a_missing_folder(tmp_path):
    gone = tmp_path / "gone"
    out = tmp_path / "out.db"
    result = cli("restore", "--from", gone, out)
    assert result.exit_code == 1
    line, _ = error_lines(result.stderr, hint=True)
    assert str(gone) in line and "does not exist" in line
    assert not out.exists() and not gone.exists()


def test_restore_with_version_and_at_together_is_refused(archived, tmp_path):
    out = tmp_path / "out.db"
    result = cli("restore", "--from", archived.target, "--version", 1, "--at", "2020-01-01", out)
    assert result.exit_code != 0
    line = error_lines(result.stderr, hint=False)[0]
    assert "--version" in line and "--at" in line
    assert not out.exists()


def test_restore_with_version_and_at_together_is_a_usage_error(archived, tmp_path):
    result = cli("restore", "--from", archived.target, "--version", 1, "--at", "2020-01-01", tmp_path / "out.db")
    assert result.exit_code == 2


def test_restore_at_a_time_before_the_first_version(archived, tmp_path):
    out = tmp_path / "out.db"
    result = cli("restore", "--from", archived.target, "--at", "2001-01-01T00:00", out)
    assert result.exit_code == 1
    line, hint = error_lines(result.stderr, hint=True)
    assert "no version" in line and "2001-01-01" in line
    first = archived.manifest()["versions"][0]["time"]
    assert first in hint
    assert not out.exists()


def test_restore_into_a_missing_folder(archived, tmp_path):
    folder = tmp_path / "no" / "such"
    result = cli("restore", "--from", archived.target, folder / "out.db")
    assert result.exit_code == 2  # a usage error, like restoring over a file without --force
    line, _ = error_lines(result.stderr, hint=True)
    assert str(folder) in line and "does not exist" in line
    assert not (tmp_path / "no").exists()


def test_restore_with_force_onto_a_directory(archived, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    result = cli("restore", "--from", archived.target, "--force", folder)
    assert result.exit_code == 2
    line = error_lines(result.stderr, hint="hint:" in result.stderr)[0]
    assert str(folder) in line
    assert (folder / "keep.txt").read_text() == "keep"


# -- damaged archives -------------------------------------------------------------------


def _object(setup: Setup, version: int) -> Path:
    return setup.target / NAME / setup.objects[version]


def _no_restore_leftovers(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.startswith(".syncd-restore")] == []


def test_corrupt_object_is_named_by_verify_and_restore(archived, tmp_path):
    damaged = _object(archived, 1)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    name = f"{NAME}/{archived.objects[1]}"

    result = cli("verify", "--from", archived.target)
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and name in problems[0] and "damaged" in problems[0], result.stdout

    result = cli("verify", "--from", archived.target, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["sources"][0]["ok"] is False
    assert any(name in p for p in report["sources"][0]["problems"])

    outdir = tmp_path / "out"
    outdir.mkdir()
    for version in (1, 3):  # 3 is rebuilt from 1's base too
        out = outdir / f"v{version}.db"
        result = cli("restore", "--from", archived.target, "--version", version, out)
        assert result.exit_code == 1
        line = error_lines(result.stderr, hint=True)[0]
        assert name in line and "damaged" in line
        assert not out.exists()
    _no_restore_leftovers(outdir)


def test_deleted_object_is_named_by_verify_and_restore(archived, tmp_path):
    _object(archived, 2).unlink()
    name = f"{NAME}/{archived.objects[2]}"

    result = cli("verify", "--from", archived.target)
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and name in problems[0] and "missing" in problems[0], result.stdout

    out = tmp_path / "v2.db"
    result = cli("restore", "--from", archived.target, "--version", 2, out)
    assert result.exit_code == 1
    line = error_lines(result.stderr, hint=True)[0]
    assert name in line and "missing" in line
    assert not out.exists()
    _no_restore_leftovers(tmp_path)

    # Version 1 doesn't need the lost object and still restores.
    assert cli("restore", "--from", archived.target, "--version", 1, out).exit_code == 0
    assert logical_state(out) == archived.expected[1]


def test_broken_manifest_json_is_reported_in_one_line(archived, tmp_path):
    manifest = archived.target / NAME / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:200])  # cut off mid-JSON

    result = cli("verify", "--from", archived.target)
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and "manifest.json" in problems[0] and "not a readable manifest" in problems[0]

    for args in (["log"], ["log", "--json"], ["restore", tmp_path / "out.db"]):
        result = cli(args[0], "--from", archived.target, *args[1:])
        assert result.exit_code == 1, args
        line = error_lines(result.stderr, hint=False)[0]
        assert "manifest.json" in line and "not a readable manifest" in line, args
        assert result.stdout == "", args
    assert not (tmp_path / "out.db").exists()


def test_edited_version_entry_is_caught_by_verify(archived):
    manifest_path = archived.target / NAME / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["versions"][1]["rows"]["changed"] += 5
    manifest["versions"][1]["rows"]["deleted"] = 7
    manifest_path.write_text(json.dumps(manifest, indent=1))

    result = cli("verify", "--from", archived.target)
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
    assert problems and all("version 2" in p for p in problems), result.stdout
    assert any("altered" in p for p in problems)


def test_manifest_without_a_base_is_reported_in_one_line(archived, tmp_path):
    manifest_path = archived.target / NAME / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["versions"][0]["base"]
    manifest_path.write_text(json.dumps(manifest, indent=1))
    assert cli("verify", "--from", archived.target).exit_code == 1  # verify already notices
    out = tmp_path / "out.db"
    result = cli("restore", "--from", archived.target, out)
    assert result.exit_code == 1
    error_lines(result.stderr, hint="hint:" in result.stderr)
    assert not out.exists()


# -- the phone's folder is read, never written -------------------------------------------


def _wal_phone(setup: Setup) -> apsw.Connection:
    """An app's open WAL database whose latest rows are only in the -wal."""
    make_db(setup.source, messages=20)
    app = apsw.Connection(str(setup.source))
    app.execute("PRAGMA journal_mode = WAL").fetchall()
    app.execute("PRAGMA wal_autocheckpoint = 0")
    app.execute("INSERT INTO message VALUES (500, 'wxid_alice', 'only in the wal', 1, 5)")
    assert Path(f"{setup.source}-wal").stat().st_size > 0
    assert Path(f"{setup.source}-shm").exists()
    return app


def _check_untouched_sync(setup: Setup, source: Path, app: apsw.Connection) -> None:
    before = fingerprint(setup.phone)
    proc = run_syncd("sync", source, "--to", setup.target, "--state", setup.state, "--json")
    assert proc.returncode == 0, proc.stderr
    assert fingerprint(setup.phone) == before
    report = json.loads(proc.stdout)
    assert report["version"] == 1 and report["rows"]["added"] == 20 + 3 + 1
    # The app carries on undisturbed, and what it had in the -wal is in the version.
    app.execute("INSERT INTO message VALUES (501, 'wxid_bob', 'after the sync', 1, 6)")
    out = setup.root / "restored.db"
    assert cli("restore", "--from", setup.target, out).exit_code == 0
    db = apsw.Connection(str(out))
    try:
        assert db.execute("SELECT content FROM message WHERE msgId = 500").fetchall() == [("only in the wal",)]
    finally:
        db.close()


def test_sync_of_an_open_wal_database_writes_nothing_beside_it(setup):
    app = _wal_phone(setup)
    try:
        _check_untouched_sync(setup, setup.source, app)
    finally:
        app.close()


@contextmanager
def read_only_view(folder: Path, view: Path):
    """`folder` seen again at `view` through a read-only bind mount; skips where that can't be done."""
    view.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(folder), str(view)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"can't bind-mount here (needs root and mount rights): {e}")
    try:
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True, capture_output=True)
        except subprocess.CalledProcessError as e:
            pytest.skip(f"can't make the bind mount read-only: {e.stderr!r}")
        with pytest.raises(OSError):
            (view / ".probe").write_bytes(b"")
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=False, capture_output=True)


@pytest.fixture
def read_only_phone(setup):
    """The phone folder seen again through a read-only bind mount."""
    with read_only_view(setup.phone, setup.root / "phone-ro") as view:
        yield view


def test_sync_from_a_read_only_folder(setup, read_only_phone):
    app = _wal_phone(setup)
    try:
        assert not os.access(read_only_phone / NAME, os.W_OK)  # the mount really is read-only
        _check_untouched_sync(setup, read_only_phone / NAME, app)
    finally:
        app.close()


# -- read-only places that syncd is asked to write to ----------------------------------------


def test_read_only_target_gets_the_version_once_writable(setup):
    make_db(setup.source)
    with read_only_view(setup.target, setup.root / "nas-ro") as view:
        result = setup.sync(targets=[view])
        _failed_target_lines(result, view, "Read-only file system")
        assert "hint:" in result.stderr
        assert contents(setup.target) == {}
        assert _local_head(setup) == 1
        subprocess.run(["mount", "-o", "remount,rw,bind", str(view)], check=True, capture_output=True)
        result = setup.sync(targets=[view])
        assert result.exit_code == 0, result.output
    assert [v["version"] for v in setup.manifest()["versions"]] == [1]


def test_restore_into_a_read_only_folder(archived, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with read_only_view(folder, tmp_path / "out-ro") as view:
        result = cli("restore", "--from", archived.target, view / "out.db")
        assert result.exit_code == 1
        line = error_lines(result.stderr, hint="hint:" in result.stderr)[0]
        assert str(view) in line
    assert list(folder.iterdir()) == []
