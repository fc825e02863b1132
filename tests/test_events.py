"""Event hooks fire from a sync pass through the plugin manager it was given; `syncd plugins` lists plugins."""

from __future__ import annotations

import json

from click.testing import CliRunner

from syncd.cli import main
from syncd.plugins import hookimpl, plugin_info, plugin_manager


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def version_persisted(self, source, version):
        self.events.append(("persisted", source, version.number))

    @hookimpl
    def target_updated(self, source, location, version):
        self.events.append(("updated", source, location, version))


def test_sync_reports_persisted_versions_and_updated_targets(harness):
    pm = plugin_manager()
    recorder = Recorder()
    pm.register(recorder)
    harness.pm = pm
    harness.execute("CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)")
    missing = harness.root / "missing"
    harness.sync([str(harness.target), str(missing)])
    assert recorder.events == [("persisted", "chat.db", 1), ("updated", "chat.db", str(harness.target), 1)]
    recorder.events.clear()
    harness.sync([str(harness.target)])
    assert recorder.events == [], "a pass that changed nothing fired events"
    harness.execute("INSERT INTO t VALUES (2)")
    harness.sync([str(harness.target)])
    assert recorder.events == [("persisted", "chat.db", 2), ("updated", "chat.db", str(harness.target), 2)]


def test_plugin_info_names_every_built_in_plugin(pm):
    info = {p.name: p for p in plugin_info(pm)}
    assert info["webdav"].schemes == ("webdav", "webdavs")
    assert info["rclone"].schemes == ("rclone",)
    assert info["folder"].schemes == ("file",)
    assert info["memory"].version == info["folder"].version


def test_plugins_command_lists_name_version_and_schemes():
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split(None, 2)[1:] for line in result.output.splitlines()}
    assert lines["webdav"][1] == "webdav, webdavs"
    listed = json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)
    assert {"name": "rclone", "version": lines["rclone"][0], "schemes": ["rclone"]} in listed
