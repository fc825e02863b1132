"""The command line's edges (issue 10, items 10–16): empty targets, test-only plugins, exit codes,
config checks, time zones, status without a config, and symlinked sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon_rig import Rig, wait_for
from servers import PASSWORD, USER, fresh_path
from test_cli import execute
from syncd.cli import main
from syncd.plugins import backend_classes, plugin_info, plugin_manager

SCHEMA = "CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'hello')"


def cli(*args, env: dict | None = None):
    """Run `syncd` in-process; an exception other than an exit fails the test with its traceback."""
    result = CliRunner(env=env).invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(*result.exc_info)))
    return result


def refused(result, code: int = 2) -> str:
    """The one `error:` line (and its hint) of a refused command."""
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error: ") and all(line.startswith("hint: ") for line in lines[1:]), lines
    return result.stderr


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """A chat db, a state dir, a folder target, and no config or state anywhere else."""
    for variable, folder in (("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "xdg-state")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / folder))
    db, target = tmp_path / "chat.db", tmp_path / "nas"
    execute(db, SCHEMA)
    target.mkdir()
    return db, tmp_path / "state", target


# -- 10: an empty target ------------------------------------------------------------------


def test_an_empty_to_archives_nothing_into_the_current_folder(phone, tmp_path, monkeypatch):
    db, state, target = phone
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for targets in ([""], [str(target), " "]):
        text = refused(cli("sync", db, *[a for t in targets for a in ("--to", t)], "--state", state))
        assert "empty" in text
    assert list(work.iterdir()) == [] and list(target.iterdir()) == [] and not state.exists()


@pytest.mark.parametrize("command", [["restore", "out.db"], ["log"], ["verify"]])
def test_an_empty_from_is_refused(phone, tmp_path, monkeypatch, command):
    db, state, target = phone
    assert cli("sync", db, "--to", target, "--state", state).exit_code == 0
    # A config whose target `verify` would check instead, were an empty --from taken for "none given".
    (tmp_path / "config" / "syncd").mkdir()
    (tmp_path / "config" / "syncd" / "config.toml").write_text(
        f'state_dir = "{state}"\n[[source]]\npath = "{db}"\n[[target]]\nurl = "{target}"\n')
    monkeypatch.chdir(tmp_path)
    assert "empty" in refused(cli(*command[:1], "--from", "", *command[1:]))
    assert not (tmp_path / "out.db").exists()


# -- 11: the memory backend is for tests only ---------------------------------------------


def test_memory_is_not_offered_to_users(phone):
    db, state, _ = phone
    listed = subprocess.run([sys.executable, "-m", "syncd", "plugins", "--json"], capture_output=True, text=True,
                            timeout=60, check=True, cwd=db.parent)
    assert "memory" not in {p["name"] for p in json.loads(listed.stdout)}
    assert "memory" not in backend_classes(plugin_manager())
    text = refused(cli("sync", db, "--to", "memory://x", "--state", state))
    assert "'memory'" in text and "has version" not in text


def test_tests_still_get_the_memory_backend(pm, syncd_plugin_manager):
    for manager in (pm, syncd_plugin_manager):
        assert backend_classes(manager)["memory"].__module__ == "syncd.testing.memory"
    info = {p.name: p for p in plugin_info(pm)}
    assert info["memory"].version == info["folder"].version  # it comes with syncd, like the folder plugin


# -- 12: exit codes and the syntax in hints -----------------------------------------------


def test_an_unknown_scheme_shows_the_real_syntax_of_every_plugin(phone):
    db, state, target = phone
    text = refused(cli("sync", db, "--to", "ftp://nas/x", "--to", target, "--state", state))
    assert "'ftp'" in text and "rclone:REMOTE:path" in text and "rclone://" not in text
    from syncd.plugins import url_syntax

    for cls in set(backend_classes(plugin_manager()).values()):
        assert cls.syntax == url_syntax(cls) and all(form in text for form in cls.syntax)
    assert list(target.iterdir()) == [] and not state.exists()


@pytest.mark.parametrize("url, problem", [
    (f"webdav://{USER}:{PASSWORD}@127.0.0.1/x", "must not hold a password"),
    ("webdav://me@127.0.0.1:99999/x", "Port out of range"),
    ("file://nas.local/share", "host"),
])
def test_a_url_no_plugin_can_use_is_a_usage_error(phone, url, problem):
    db, state, target = phone
    result = cli("sync", db, "--to", target, "--to", url, "--state", state)
    text = refused(result)
    assert problem in text and PASSWORD not in result.output
    assert list(target.iterdir()) == [], "a usage error must stop the command before any target is written"


def test_restore_on_several_sources_needs_source_and_log_lists_them_all(phone, tmp_path):
    """Issue 12 changed `log`: a target of several sources (an iOS backup's apps) is listed whole."""
    db, state, target = phone
    for name in ("one", "two"):
        assert cli("sync", db, "--name", name, "--to", target, "--state", state).exit_code == 0
    assert [s["source"] for s in json.loads(cli("log", "--from", target, "--json").output)] == ["one", "two"]
    assert "--source" in refused(cli("restore", "--from", target, tmp_path / "out.db"))
    assert cli("log", "--from", target, "--source", "two").exit_code == 0


def test_restore_onto_an_existing_file_without_force_is_a_usage_error(phone, tmp_path):
    db, state, target = phone
    assert cli("sync", db, "--to", target, "--state", state).exit_code == 0
    out = tmp_path / "out.db"
    out.write_bytes(b"keep")
    assert "--force" in refused(cli("restore", "--from", target, out))
    assert out.read_bytes() == b"keep"


# -- 13: verify --config and config check, as the daemon opens targets ------------------------------


def test_verify_config_uses_each_targets_options(phone, tmp_path, wsgidav, monkeypatch):
    db, state, _ = phone
    url = wsgidav.url(fresh_path())
    assert cli("sync", db, "--to", url, "--state", state).exit_code == 0  # the password from the test netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # from now on only the config has it
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{state}"\n[[source]]\npath = "{db}"\n'
                      f'[[target]]\nurl = "{url}"\noptions = {{ password = "{PASSWORD}" }}\n')
    result = cli("verify", "--config", config)
    assert result.exit_code == 0, result.output
    assert "chat.db: 1 versions" in result.stdout and PASSWORD not in result.output


@pytest.mark.parametrize("url, options, problem", [
    ("ftp://nas/chat", "", "no storage plugin handles 'ftp'"),
    (f"webdav://{USER}:{PASSWORD}@127.0.0.1/chat", "", "must not hold a password"),
    ("webdav://me@127.0.0.1:70000/chat", "", "Port out of range"),
    ("webdav://me@127.0.0.1/chat", 'options = { pasword = "x" }', "take no option 'pasword'"),
    ("rclone:nocolon", "", "names no remote"),
])
def test_config_check_opens_every_target_as_the_daemon_will(tmp_path, url, options, problem):
    config = tmp_path / "config.toml"
    config.write_text(f'[[source]]\npath = "/phone/chat.db"\n[[target]]\nurl = "{tmp_path}"\n'
                      f'[[target]]\nurl = "{url}"\n{options}\n')
    result = cli("config", "check", "--config", config)
    text = refused(result)
    assert f"{config}: target[2].url: " in text and problem in text and PASSWORD not in result.output


def test_config_check_touches_no_network(tmp_path, closed_port):
    config = tmp_path / "config.toml"
    config.write_text(f'[[source]]\npath = "/phone/chat.db"\n[[target]]\nurl = "webdav://me@127.0.0.1:{closed_port}/x"\n'
                      f'options = {{ password = "pw" }}\n[[target]]\nurl = "rclone:nowhere:chat"\n')
    started = time.monotonic()
    result = cli("config", "check", "--config", config)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 5


# -- 14: --at's time zone, and an identity that is a folder ----------------------------------------


@pytest.fixture
def two_versions(phone, monkeypatch):
    """Versions 1 and 2, a second apart, on a folder target; the machine's zone is UTC+8."""
    db, state, target = phone
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    assert cli("sync", db, "--to", target, "--state", state).exit_code == 0
    time.sleep(1.1)
    execute(db, "INSERT INTO message VALUES (2, 'again')")
    assert cli("sync", db, "--to", target, "--state", state).exit_code == 0
    versions = json.loads(cli("log", "--from", target, "--json").stdout)["versions"]
    yield target, datetime.fromisoformat(versions[0]["time"])
    monkeypatch.delenv("TZ")
    time.tzset()


def test_a_bare_at_is_utc_as_log_prints(two_versions, tmp_path):
    target, first = two_versions
    assert first.utcoffset() == timedelta(0)
    bare = first.replace(tzinfo=None).isoformat()
    east = first.astimezone(timezone(timedelta(hours=8))).isoformat()
    zulu = bare + "Z"
    for n, at in enumerate((bare, east, zulu)):
        out = tmp_path / f"at-{n}.db"
        result = cli("restore", "--from", target, "--at", at, out)
        assert result.exit_code == 0, result.output
        assert " version 1 " in result.stdout and "+00:00" in result.stdout, result.stdout
    assert "UTC" in cli("restore", "--help").stdout


def test_an_unparseable_at_says_which_zone_a_bare_time_means(two_versions, tmp_path):
    target, _ = two_versions
    result = cli("restore", "--from", target, "--at", "yesterday", tmp_path / "x.db")
    assert result.exit_code == 2 and "(UTC)" in result.stderr and "+08:00" in result.stderr


def test_an_identity_that_is_a_folder_is_named_so(phone, tmp_path):
    db, state, target = phone
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    text = refused(cli("restore", "--from", target, "--identity", folder, tmp_path / "out.db"))
    assert "is a folder" in text and "chmod" not in text


# -- 15 and 6: status without a config, a source's last error, a bad target ----------------------


def test_status_of_a_state_dir_shows_the_queue(phone, tmp_path):
    db, state, target = phone
    offline = tmp_path / "usb"
    offline.mkdir()
    assert cli("sync", db, "--to", target, "--to", offline, "--state", state).exit_code == 0
    offline.rename(tmp_path / "unplugged")
    execute(db, "INSERT INTO message VALUES (2, 'queued')")
    assert "queued locally" in cli("sync", db, "--to", target, "--to", offline, "--state", state).stderr

    report = json.loads(cli("status", "--state", state, "--json").stdout)
    [source] = report["sources"]
    assert report["config"] is None and (source["name"], source["version"], source["versions"]) == ("chat.db", 2, 2)
    targets = {t["location"]: t for t in source["targets"]}
    assert (targets[str(target)]["version"], targets[str(target)]["pending_versions"]) == (2, 0)
    assert (targets[str(offline)]["version"], targets[str(offline)]["pending_versions"]) == (1, 1)
    text = cli("status", "--state", state).stdout
    assert f"{offline}: has version 1, 1 version(s) pending" in text and f"{target}: has version 2, up to date" in text


def test_status_of_a_state_dir_shows_a_target_that_never_got_anything(phone, tmp_path):
    db, state, target = phone
    unplugged = tmp_path / "usb"  # never there: the first version stays queued for it
    assert "queued locally" in cli("sync", db, "--to", target, "--to", unplugged, "--state", state).stderr
    [source] = json.loads(cli("status", "--state", state, "--json").stdout)["sources"]
    [offline] = [t for t in source["targets"] if t["location"] == str(unplugged)]
    assert (offline["version"], offline["pending_versions"], offline["failures"]) == (None, 1, 1)
    assert "does not exist" in offline["error"]
    text = cli("status", "--state", state).stdout
    assert f"{unplugged}: has nothing yet, 1 version(s) pending" in text and "last error" in text


def test_status_without_a_config_reads_the_default_state_dir(phone, tmp_path):
    db, _, target = phone
    assert cli("sync", db, "--to", target).exit_code == 0  # the default state dir, under $XDG_STATE_HOME
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("chat.db: version 1 at ")


def test_a_sources_last_error_shows_until_it_is_archived_again(phone):
    db, state, target = phone
    good = db.read_bytes()
    db.write_bytes(good[: len(good) // 2])
    assert cli("sync", db, "--to", target, "--state", state).exit_code == 2
    [source] = json.loads(cli("status", "--state", state, "--json").stdout)["sources"]
    assert "truncated" in source["error"]["error"] and source["error"]["failed_at"]
    assert "last error" in cli("status", "--state", state).stdout
    db.write_bytes(good)
    assert cli("sync", db, "--to", target, "--state", state).exit_code == 0
    [source] = json.loads(cli("status", "--state", state, "--json").stdout)["sources"]
    assert source["error"] is None and source["version"] == 1


def test_the_daemon_records_a_sources_last_error(tmp_path):
    rig = Rig(tmp_path, targets=1)
    rig.source.write_bytes(os.urandom(8192))  # not SQLite: refused, and said so in status
    rig.start()
    try:
        error = wait_for(lambda: rig.status()["sources"][0]["error"], what=lambda: f"the source's error\n{rig.log()}")
        assert "SQLite" in error["error"] or "encrypted" in error["error"], error
    finally:
        rig.kill()


def test_status_never_crashes_on_a_bad_target(phone, tmp_path):
    db, state, target = phone
    assert cli("sync", db, "--to", target, "--state", state).exit_code == 0
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{state}"\n[[source]]\npath = "{db}"\n'
                      f'[[target]]\nurl = "webdav://me@127.0.0.1:99999/x"\n[[target]]\nurl = "{target}"\n')
    result = cli("status", "--config", config, "--json")
    assert result.exit_code == 0, result.output
    bad, good = json.loads(result.stdout)["sources"][0]["targets"]
    assert "Port out of range" in bad["error"] and good["version"] == 1 and good["error"] is None


# -- 16: a symlinked source is watched where it really lives ------------------------------------


def test_the_daemon_watches_the_file_a_symlinked_source_points_to(tmp_path):
    # A rescan far away: only a watch on the real file can bring the change in time.
    rig = Rig(tmp_path, targets=1, rescan=300.0)
    drops = [tmp_path / "drop-a", tmp_path / "drop-b"]
    for drop in drops:
        drop.mkdir()
        execute(drop / "EnMicroMsg.db", SCHEMA)
    rig.source.symlink_to(drops[0] / "EnMicroMsg.db")
    rig.start()
    try:
        rig.wait_heads(1)

        def write_real(drop: Path, n: int) -> None:
            """What a sync tool does where the real file lives: a changed copy renamed over it."""
            partial = drop / ".EnMicroMsg.db.partial"
            shutil.copyfile(drop / "EnMicroMsg.db", partial)
            execute(partial, f"INSERT INTO message VALUES ({n}, 'new')")
            os.replace(partial, drop / "EnMicroMsg.db")

        write_real(drops[0], 2)
        rig.wait_heads(2, timeout=20)
        # Re-pointed link (as `ln -sfn` does it): the new file is archived, then watched.
        link = rig.phone / ".chat.db.link"
        link.symlink_to(drops[1] / "EnMicroMsg.db")
        os.replace(link, rig.source)
        rig.wait_heads(3, timeout=20)
        write_real(drops[1], 3)
        rig.wait_heads(4, timeout=20)
        write_real(drops[0], 4)  # no longer the source: nothing to archive
        time.sleep(1.5)
        assert rig.head(rig.targets[0]) == 4, rig.log()
    finally:
        rig.kill()
