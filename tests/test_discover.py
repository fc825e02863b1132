"""`syncd sources`: the chat databases in the usual places of a home folder, readable or not, and adding them
to the config file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.daemon.config import load_config

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def need_fixtures() -> None:
    """The real databases live beside the project (../shared), as for the other fixture tests."""
    if not FIXTURES.exists():
        pytest.skip("the shared fixtures folder is not beside the project")
MESSAGES = Path("Library/Messages/chat.db")
WHATSAPP = Path("Library/Group Containers/group.net.whatsapp.WhatsApp.shared/ChatStorage.sqlite")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def home(tmp_path) -> Path:
    need_fixtures()
    home = tmp_path / "home"
    for where, fixture in ((MESSAGES, "imessage-macos-chat.db"), (WHATSAPP, "whatsapp-ios-ChatStorage.sqlite")):
        (home / where).parent.mkdir(parents=True)
        shutil.copyfile(FIXTURES / fixture, home / where)
    return home


def test_lists_the_desktop_apps_databases(home):
    found = {f["name"]: f for f in json.loads(cli("sources", "--home", home, "--json").output)}
    assert found["imessage-mac"] == {"path": str(home / MESSAGES), "kind": "sqlite", "name": "imessage-mac",
                                     "app": "imessage", "readable": True, "problem": None, "hint": None}
    assert found["whatsapp-desktop"]["path"] == str(home / WHATSAPP) and found["whatsapp-desktop"]["readable"]


def test_a_file_that_is_not_what_the_place_should_hold_is_said(home):
    (home / WHATSAPP).write_bytes(b"half a download")
    found = {f["name"]: f for f in json.loads(cli("sources", "--home", home, "--json").output)}
    assert not found["whatsapp-desktop"]["readable"] and found["whatsapp-desktop"]["problem"] == "not a sqlite source"


def test_an_empty_home_says_where_to_go_instead(tmp_path):
    result = cli("sources", "--home", tmp_path)
    assert result.exit_code == 0 and "give `syncd sync` the path instead" in result.output


def test_looking_changes_nothing(home):
    def state():
        # Files: a folder's atime moves whenever anyone lists it, this test included.
        return {p: (p.stat().st_mtime_ns, p.stat().st_atime_ns) for p in home.rglob("*") if p.is_file()}

    before = state()
    assert cli("sources", "--home", home).exit_code == 0
    assert state() == before


def test_add_appends_each_readable_source_once_and_the_config_still_loads(home, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'# mine\n[[source]]\nname = "imessage-mac"\npath = "{tmp_path}/other.db"\n\n'
                      f'[[target]]\nurl = "{tmp_path}/nas"\n')
    result = cli("sources", "--home", home, "--add", "--config", config)
    assert result.exit_code == 0, result.output
    assert "2 source(s) added" in result.output
    assert config.read_text().startswith("# mine\n")
    sources = {s.name: s for s in load_config(config).sources}
    assert sources["imessage-mac-2"].path == home / MESSAGES and sources["imessage-mac-2"].kind == "sqlite"
    assert sources["whatsapp-desktop"].path == home / WHATSAPP
    again = cli("sources", "--home", home, "--add", "--config", config)
    assert "0 source(s) added" in again.output and len(load_config(config).sources) == 3


def test_an_unreadable_place_gets_a_hint(home):
    """As root, without the capabilities that read any file (see test_bad_input), a chmod 000 is real."""
    (home / MESSAGES).chmod(0)
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0:
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop the capability to read any file")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]
    else:
        command = []
    proc = subprocess.run([*command, sys.executable, "-m", "syncd", "sources", "--home", str(home), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = {f["name"]: f for f in json.loads(proc.stdout)}
    assert found["imessage-mac"]["readable"] is False and found["imessage-mac"]["problem"] == "permission denied"
    assert found["imessage-mac"]["hint"]


def test_finds_the_finder_backup_folder_and_adds_it_once(tmp_path):
    """Finder's MobileSync/Backup (every device's backup under it) is one source of the ios-backup kind."""
    from ios_backup_builder import SMS, BackupBuilder

    need_fixtures()
    home = tmp_path / "home"
    backups = home / "Library/Application Support/MobileSync/Backup"
    builder = BackupBuilder(backups / "00008110-ann")
    builder.put(SMS, (FIXTURES / "imessage-macos-chat.db").read_bytes())
    builder.write()
    found = {f["name"]: f for f in json.loads(cli("sources", "--home", home, "--json").output)}
    assert found["iphone-backups"]["kind"] == "ios-backup" and found["iphone-backups"]["readable"]
    assert found["iphone-backups"]["path"] == str(backups)
    config = tmp_path / "config.toml"
    config.write_text(f'[[target]]\nurl = "{tmp_path}/nas"\n')
    assert "1 source(s) added" in cli("sources", "--home", home, "--add", "--config", config).output
    source, = load_config(config).sources
    assert source.kind == "ios-backup" and source.path == backups
