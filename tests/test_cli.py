"""The `syncd` command: help for everything, --version, and whole sessions through real processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import apsw
import click
import pytest
from click.testing import CliRunner

from logical import logical_state
from syncd import __version__
from syncd.cli import main

NAME = "chat.db"

SCHEMA = """
CREATE TABLE rcontact(username TEXT PRIMARY KEY, nickname TEXT, type INT);
CREATE TABLE message(msgId INTEGER PRIMARY KEY, talker TEXT, content TEXT, type INT, createTime INTEGER);
CREATE INDEX messageTalkerIndex ON message(talker);
INSERT INTO rcontact VALUES ('wxid_alice', '爱丽丝', 3), ('wxid_bob', 'Bob', 3), ('123@chatroom', '家庭群', 2);
INSERT INTO message VALUES (1, 'wxid_alice', '早上好', 1, 1700000000000), (2, 'wxid_alice', 'are you up?', 1, 1700000001000),
                           (3, 'wxid_bob', 'lunch?', 1, 1700000002000), (4, 'wxid_bob', '🍜', 1, 1700000003000),
                           (5, '123@chatroom', 'wxid_bob:\n晚饭吃什么', 1, 1700000004000),
                           (6, '123@chatroom', 'wxid_alice:\n火锅', 1, 1700000005000);
"""
# Each step after the first, with the row counts its version must report.
STEPS = [
    (SCHEMA, {"added": 9, "changed": 0, "deleted": 0}),
    ("INSERT INTO message VALUES (7, 'wxid_alice', 'new 🎉', 1, 1700000006000);"
     "INSERT INTO message VALUES (8, 'wxid_bob', 'ok', 1, 1700000007000);"
     "UPDATE message SET type = 10000, content = '\"爱丽丝\" 撤回了一条消息' WHERE msgId = 2",  # a recall
     {"added": 2, "changed": 1, "deleted": 0}),
    ("DELETE FROM message WHERE talker = '123@chatroom'; DELETE FROM rcontact WHERE username = '123@chatroom'",
     {"added": 0, "changed": 0, "deleted": 3}),
]
LOG_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+\+(\d+) added, ~(\d+) changed, -(\d+) deleted\b")


# -- helpers -----------------------------------------------------------------------


def execute(path: Path, sql: str) -> None:
    db = apsw.Connection(str(path))
    try:
        db.execute(sql).fetchall()
    finally:
        db.close()


def cli(*args):
    """Run `syncd` in-process; an exception other than an exit fails the test with its traceback."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))
        pytest.fail(f"syncd {' '.join(map(str, args))} raised instead of reporting:\n{trace}")
    return result


def ok(*args):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def home(tmp_path):
    """An empty HOME and no XDG_STATE_HOME, so nothing can lean on state left elsewhere."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_STATE_HOME"}
    env["HOME"] = str(home)
    return home, env


def run(env: dict, *args, cwd: Path | None = None, code: int = 0) -> subprocess.CompletedProcess:
    """`python -m syncd ARGS` as a real process."""
    proc = subprocess.run([sys.executable, "-m", "syncd", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


# -- help and version ----------------------------------------------------------------


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, path + (name,))


COMMANDS = list(_walk(main))


def test_every_command_is_walked():
    names = {path[-1] for path, _ in COMMANDS if path}
    assert {"sync", "restore", "log", "verify"} <= names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(("syncd",) + p) for p, _ in COMMANDS])
def test_every_command_has_help(path, command):
    assert command.help and command.help.strip(), f"{' '.join(path) or 'syncd'} has no docstring"
    summary = command.help.strip().splitlines()[0]
    for flag in ("--help", "-h"):
        result = ok(*path, flag)
        assert result.stdout.startswith("Usage: "), result.stdout
        assert summary in " ".join(result.stdout.split()), result.stdout
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert param.help and param.help.strip(), f"option {param.opts} of {' '.join(path)} has no help"
    if isinstance(command, click.Group):
        listing = ok(*path, "--help").stdout
        for name in command.commands:
            assert re.search(rf"^\s+{re.escape(name)}\s", listing, re.M), f"{name} missing from the command list"


def test_version_option():
    assert ok("--version").stdout == f"syncd, version {__version__}\n"


def test_version_of_the_installed_script(home):
    _, env = home
    script = Path(sys.executable).with_name("syncd")
    command = [str(script)] if script.exists() else [shutil.which("syncd") or pytest.skip("no syncd script")]
    proc = subprocess.run([*command, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"syncd, version {__version__}"


def test_python_dash_m_help(home):
    _, env = home
    proc = run(env, "--help")
    assert proc.stdout.startswith("Usage: ")
    for name in ("sync", "restore", "log", "verify"):
        assert re.search(rf"^\s+{name}\s", proc.stdout, re.M), proc.stdout


def test_unparseable_at_is_a_usage_error(tmp_path):
    target = tmp_path / "nas"
    target.mkdir()
    phone = tmp_path / NAME
    execute(phone, SCHEMA)
    ok("sync", phone, "--to", target, "--state", tmp_path / "state")
    result = cli("restore", "--from", target, "--at", "last tuesday", tmp_path / "out.db")
    assert result.exit_code == 2
    assert "not a date and time" in result.stderr
    assert not (tmp_path / "out.db").exists()


# -- a whole session through real processes ------------------------------------------------


def test_session_end_to_end(tmp_path, home):
    home_dir, env = home
    phone = tmp_path / "phone" / NAME
    phone.parent.mkdir()
    target = tmp_path / "nas"
    target.mkdir()
    state = tmp_path / "state"
    expected, reports = {}, {}

    for number, (sql, rows) in enumerate(STEPS, start=1):
        execute(phone, sql)
        report = json.loads(run(env, "sync", phone, "--to", target, "--state", state, "--json").stdout)
        assert set(report) == {"source", "changed", "version", "head", "time", "rows", "bytes", "targets", "detection"}
        assert report["source"] == NAME
        assert report["changed"] is True and report["version"] == number and report["head"] == number
        assert {k: report["rows"][k] for k in rows} == rows
        assert report["bytes"] > 0
        [t] = report["targets"]
        assert set(t) == {"location", "ok", "version", "bytes", "error", "hint"}
        assert t == {"location": str(target), "ok": True, "version": number, "bytes": t["bytes"],
                     "error": None, "hint": None}
        assert t["bytes"] >= report["bytes"]  # the version's objects, plus the manifest
        expected[number], reports[number] = logical_state(phone), report

    # Nothing changed: no version, nothing sent.
    again = json.loads(run(env, "sync", phone, "--to", target, "--state", state, "--json").stdout)
    assert again["changed"] is False and again["version"] is None and again["head"] == 3
    assert again["time"] is None and again["rows"] is None and again["bytes"] == 0
    assert [(t["ok"], t["version"], t["bytes"]) for t in again["targets"]] == [(True, 3, 0)]
    text = run(env, "sync", phone, "--to", target, "--state", state).stdout
    assert "no change since version 3" in text

    # The log, as text and as JSON, says what each version did.
    lines = [m.groups() for m in map(LOG_LINE.match, run(env, "log", "--from", target).stdout.splitlines()) if m]
    assert [(int(n), time) for n, time, *_ in lines] == [(n, reports[n]["time"]) for n in (1, 2, 3)]
    assert [tuple(map(int, counts)) for _, _, *counts in lines] == [
        (r["added"], r["changed"], r["deleted"]) for _, r in STEPS]
    log = json.loads(run(env, "log", "--from", target, "--json").stdout)
    assert log["source"] == NAME
    assert [v["version"] for v in log["versions"]] == [1, 2, 3]
    for v in log["versions"]:
        assert {"version", "time", "parent", "hash", "rows"} <= set(v)
        assert v["time"] == reports[v["version"]]["time"]
        assert v["rows"] == reports[v["version"]]["rows"]
        assert v.get("delta") or v.get("base")
    assert log["versions"][0]["parent"] is None and "base" in log["versions"][0]
    assert [v["parent"] for v in log["versions"][1:]] == [v["hash"] for v in log["versions"][:-1]]

    check = json.loads(run(env, "verify", "--from", target, "--json").stdout)
    assert check["target"] == str(target) and check["ok"] is True
    [source] = check["sources"]
    assert source["source"] == NAME and source["versions"] == 3 and source["ok"] is True
    assert source["problems"] == [] and source["unreferenced"] == []
    assert source["objects"] == sum(("delta" in v) + ("base" in v) for v in log["versions"])

    # Restore needs the target alone: no state dir, an empty HOME, a fresh folder.
    shutil.rmtree(state)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for number in (1, 2, 3):
        out = elsewhere / f"v{number}.db"
        proc = run(env, "restore", "--from", target, "--version", number, out.name, cwd=elsewhere)
        assert f"version {number}" in proc.stdout
        assert logical_state(out) == expected[number], f"version {number} differs"
    at = run(env, "restore", "--from", target, "--at", reports[2]["time"], "at.db", cwd=elsewhere)
    assert "version 2" in at.stdout
    assert logical_state(elsewhere / "at.db") == expected[2]
    latest = run(env, "restore", "--from", target, "latest.db", cwd=elsewhere)
    assert "version 3" in latest.stdout
    assert logical_state(elsewhere / "latest.db") == expected[3]
    assert list(home_dir.iterdir()) == [], "restore wrote state into HOME"
    assert not state.exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["at.db", "latest.db", "v1.db", "v2.db", "v3.db"]


def test_two_targets_each_hold_everything(tmp_path):
    phone = tmp_path / NAME
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    a.mkdir()
    b.mkdir()
    expected = {}
    for number, (sql, _) in enumerate(STEPS, start=1):
        execute(phone, sql)
        result = ok("sync", phone, "--to", a, "--to", b, "--state", state)
        assert f"{a}: has version {number}" in result.stdout and f"{b}: has version {number}" in result.stdout
        expected[number] = logical_state(phone)
    files_a = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    assert files_a == files_b
    assert [v["version"] for v in json.loads(files_a[Path(NAME, "manifest.json")])["versions"]] == [1, 2, 3]

    shutil.rmtree(state)
    for target in (a, b):
        ok("verify", "--from", target)
    for number in (1, 2, 3):
        restored = []
        for target, other in ((a, b), (b, a)):
            hidden = other.with_name(other.name + "-away")
            other.rename(hidden)  # the other target is really out of reach
            try:
                out = tmp_path / f"{target.name}-v{number}.db"
                ok("restore", "--from", target, "--version", number, out)
            finally:
                hidden.rename(other)
            restored.append(logical_state(out))
        assert restored[0] == restored[1] == expected[number]


def test_named_sources_share_a_target(tmp_path):
    target, state = tmp_path / "nas", tmp_path / "state"
    target.mkdir()
    wechat, whatsapp = tmp_path / "EnMicroMsg.db", tmp_path / "msgstore.db"
    execute(wechat, SCHEMA)
    execute(whatsapp, "CREATE TABLE messages(_id INTEGER PRIMARY KEY, data TEXT); INSERT INTO messages VALUES (1, 'hi')")

    result = ok("sync", wechat, "--name", "wechat", "--to", target, "--state", state)
    assert result.stdout.startswith("wechat: version 1")
    assert (target / "wechat" / "manifest.json").exists()
    assert not (target / wechat.name).exists()
    assert (state / "sources" / "wechat" / "archive" / "wechat" / "manifest.json").exists()

    # Restoring with only one source there needs no --source.
    ok("restore", "--from", target, tmp_path / "only.db")
    assert logical_state(tmp_path / "only.db") == logical_state(wechat)

    ok("sync", whatsapp, "--name", "whatsapp", "--to", target, "--state", state)
    for name, db in (("wechat", wechat), ("whatsapp", whatsapp)):
        out = tmp_path / f"{name}.db"
        result = ok("restore", "--from", target, "--source", name, out)
        assert result.stdout.startswith(f"restored {name} version 1")
        assert logical_state(out) == logical_state(db)
        assert json.loads(ok("log", "--from", target, "--source", name, "--json").stdout)["source"] == name

    out = tmp_path / "which.db"
    result = cli("restore", "--from", target, out)
    assert result.exit_code == 2  # not naming which source is a usage error (issue 10, item 12)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ") and "wechat" in lines[0] and "whatsapp" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: ") and "--source" in lines[1]
    assert not out.exists()

    result = cli("restore", "--from", target, "--source", "signal", out)
    assert result.exit_code == 1
    assert "'signal'" in result.stderr and "wechat, whatsapp" in result.stderr
    assert not out.exists()

    check = json.loads(ok("verify", "--from", target, "--json").stdout)
    assert sorted(s["source"] for s in check["sources"]) == ["wechat", "whatsapp"]


def test_invalid_name_is_a_usage_error(tmp_path):
    phone = tmp_path / NAME
    execute(phone, SCHEMA)
    result = cli("sync", phone, "--name", "../escape", "--to", tmp_path, "--state", tmp_path / "state")
    assert result.exit_code == 2


def test_invalid_name_is_refused_and_nothing_written(tmp_path):
    phone, target, state = tmp_path / NAME, tmp_path / "nas", tmp_path / "state"
    target.mkdir()
    execute(phone, SCHEMA)
    result = cli("sync", phone, "--name", "../escape", "--to", target, "--state", state)
    assert result.exit_code != 0
    assert result.stderr.startswith("error: '../escape' can't name a source")
    assert list(target.iterdir()) == [] and not state.exists()


# -- the demo ---------------------------------------------------------------------------------

DEMO_VERSION = re.compile(r"^\s+version (\d+): .*: \+(\d+) added, ~(\d+) changed, -(\d+) deleted rows")


def test_demo_tells_a_true_story(tmp_path, home):
    _, env = home
    workdir = tmp_path / "demo"
    proc = run(env, "demo", "--dir", workdir)
    said = [tuple(map(int, m.groups())) for m in map(DEMO_VERSION.match, proc.stdout.splitlines()) if m]
    assert [n for n, *_ in said] == [1, 2, 3, 4], proc.stdout
    nas = workdir / "nas"
    log = json.loads(run(env, "log", "--from", nas, "--json").stdout)
    assert [(v["version"], v["rows"]["added"], v["rows"]["changed"], v["rows"]["deleted"])
            for v in log["versions"]] == said
    assert json.loads(run(env, "verify", "--from", nas, "--json").stdout)["ok"] is True

    # What it says it restored is version 2.
    restored = workdir / "restored-version-2.db"
    assert str(restored) in proc.stdout
    run(env, "restore", "--from", nas, "--version", 2, tmp_path / "v2.db")
    assert logical_state(restored) == logical_state(tmp_path / "v2.db")

    # The commands it suggests work as printed.
    suggested = proc.stdout.split("Try it yourself:", 1)[1].split()
    commands = " ".join(suggested).split("syncd ")[1:]
    assert len(commands) == 3
    for command in commands:
        run(env, *command.split())
    assert (workdir / "v3.db").exists()


def test_demo_without_dir_uses_a_new_temporary_folder(tmp_path, home):
    _, env = home
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = run(dict(env, TMPDIR=str(scratch)), "demo")
    [workdir] = list(scratch.iterdir())
    assert workdir.name.startswith("syncd-demo-") and str(workdir) in proc.stdout
    assert (workdir / "nas" / "EnMicroMsg.db" / "manifest.json").exists()


def test_demo_run_twice_in_the_same_dir(tmp_path, home):
    _, env = home
    workdir = tmp_path / "demo"
    run(env, "demo", "--dir", workdir)
    proc = subprocess.run([sys.executable, "-m", "syncd", "demo", "--dir", str(workdir)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert "Traceback" not in proc.stderr
    if proc.returncode == 0:  # starting over is fine…
        said = [int(m.group(1)) for m in map(DEMO_VERSION.match, proc.stdout.splitlines()) if m]
        assert said == [1, 2, 3, 4]
        log = json.loads(run(env, "log", "--from", workdir / "nas", "--json").stdout)
        assert len(log["versions"]) == 4
    else:  # …and so is refusing with one clear line
        assert proc.stderr.startswith("error: ") and str(workdir) in proc.stderr.splitlines()[0]
