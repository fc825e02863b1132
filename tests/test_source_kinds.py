"""Source kinds: the seam (syncd/source.py), how a kind is chosen, and the pipeline around it.

A test kind, `folder-of-dbs`, stands for any kind that yields several databases (an iOS
backup) and counts what it is asked, so the tests can see that an untouched database is
never materialised and that each database is its own source.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd import plugins as plugins_module
from syncd.cli import main
from syncd.errors import KeyProblem, UsageError
from syncd.plugins import hookimpl, open_source, plugin_manager, source_kinds
from syncd.source import Database, SourceOptions, read_secret_file, stat_signature
from syncd.sync import sync_source
from syncd.testing import SourceKindContract
from syncd_sqlite import SQLiteFile


def make_db(path: Path, rows: int, table: str = "message") -> None:
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, text TEXT)")
    db.executemany(f"INSERT INTO {table} (text) VALUES (?)", [(f"hello {i}",) for i in range(rows)])
    db.commit()
    db.close()


class FolderOfDatabases:
    """Every `*.db` in a folder marked by `KIND`; counts materialisations; writes back reversed."""

    kind = "folder-of-dbs"
    summary = "a test kind: each *.db of a marked folder"
    priority = 10
    materialised: list[str] = []

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return (Path(path) / "KIND").is_file()

    def __init__(self, path, options, workdir):
        self.path, self.prefix = Path(path), options.name or "box"

    def databases(self):
        return [Database(f"{self.prefix}.{p.stem}", stat_signature(p), app="test", path=p,
                         origin={"kind": self.kind, "flavour": "plain"})
                for p in sorted(self.path.glob("*.db"))]

    def materialise(self, db):
        self.materialised.append(db.name)
        return db.path

    def close(self):
        pass

    @classmethod
    def write_back(cls, plain, out, origin, options):
        key = options.key()
        data = Path(plain).read_bytes()
        Path(out).write_bytes(key.encode() + b"|" + origin["flavour"].encode() + b"|" + data)


class TestPlugin:
    @hookimpl
    def register_sources(self):
        return [FolderOfDatabases]


@pytest.fixture
def pm(monkeypatch):
    pm = plugin_manager()
    pm.register(TestPlugin(), name="folder-of-dbs")
    FolderOfDatabases.materialised = []
    # The CLI builds its own manager: give it this one.
    monkeypatch.setattr(plugins_module, "plugin_manager", lambda: pm)
    return pm


@pytest.fixture
def box(tmp_path) -> Path:
    (tmp_path / "nas").mkdir()  # the target every test here uses
    box = tmp_path / "box"
    box.mkdir()
    (box / "KIND").write_text("")
    make_db(box / "one.db", 3)
    make_db(box / "two.db", 5)
    return box


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- the plain file kind passes the conformance suite --------------------------------------------


class TestSQLiteFileKind(SourceKindContract):
    @pytest.fixture
    def kind(self):
        return SQLiteFile

    @pytest.fixture
    def source_path(self, tmp_path):
        phone = tmp_path / "phone"
        phone.mkdir()
        make_db(phone / "chat.db", 10)
        return phone / "chat.db"

    @pytest.fixture
    def options(self):
        return SourceOptions()

    @pytest.fixture
    def change_source(self, source_path):
        return lambda: make_db(source_path, 1)


def test_the_contract_catches_a_kind_that_writes_into_the_source(tmp_path):
    """The suite itself can fail: a kind that leaves a file beside the source is caught."""

    class Littering(SQLiteFile):
        def materialise(self, db):
            Path(f"{db.path}-shm").write_bytes(b"")
            return db.path

    make_db(tmp_path / "chat.db", 2)
    with pytest.raises(AssertionError):
        SourceKindContract().test_writes_nothing_into_the_source(Littering, tmp_path / "chat.db", SourceOptions(),
                                                                 tmp_path / "work")


# -- choosing a kind ------------------------------------------------------------------------------


def test_kinds_are_asked_in_priority_order_with_the_plain_file_last(pm, box):
    kinds = source_kinds(pm)
    assert kinds[-1] is SQLiteFile and FolderOfDatabases in kinds
    assert isinstance(open_source(pm, box, SourceOptions(), lambda kind: box / "work"), FolderOfDatabases)
    assert isinstance(open_source(pm, box / "one.db", SourceOptions(), lambda kind: box), SQLiteFile)


def test_a_kind_can_be_forced_and_an_unknown_one_is_a_usage_error(pm, box):
    assert isinstance(open_source(pm, box / "one.db", SourceOptions(), lambda k: box, "sqlite"), SQLiteFile)
    with pytest.raises(UsageError, match="no source kind is named 'nope'"):
        open_source(pm, box, SourceOptions(), lambda k: box, "nope")


def test_a_kind_that_fails_while_recognising_does_not_hide_the_others(pm, box, monkeypatch):
    def broken(cls, path):
        raise RuntimeError("a plugin bug")

    monkeypatch.setattr(FolderOfDatabases, "recognises", classmethod(broken))
    assert isinstance(open_source(pm, box / "one.db", SourceOptions(), lambda k: box), SQLiteFile)


def test_a_folder_no_kind_knows_is_one_line(tmp_path):
    result = cli("sync", tmp_path, "--to", tmp_path / "nas", "--state", tmp_path / "state")
    assert result.exit_code == 2
    assert "nor a folder any source kind recognises" in result.stderr


def test_plugins_lists_source_kinds(pm):
    text = cli("plugins").output
    assert "source kind 'sqlite'" in text and "source kind 'folder-of-dbs'" in text
    listed = {p["name"]: p for p in json.loads(cli("plugins", "--json").output)}
    assert listed["sqlite"]["kinds"] == [{"kind": "sqlite", "summary": SQLiteFile.summary}]
    assert "kinds" not in listed["folder"]


# -- a source of several databases ----------------------------------------------------------------


def test_each_database_is_a_source_of_its_own(pm, box, tmp_path):
    target, state = tmp_path / "nas", tmp_path / "state"
    result = cli("sync", box, "--name", "ann", "--to", target, "--state", state, "--json")
    assert result.exit_code == 0, result.output
    reports = json.loads(result.output)
    assert [(r["source"], r["version"]) for r in reports] == [("ann.one", 1), ("ann.two", 1)]
    listed = json.loads(cli("log", "--from", target, "--json").output)
    assert [(s["source"], len(s["versions"])) for s in listed] == [("ann.one", 1), ("ann.two", 1)]
    text = cli("log", "--from", target).output
    assert text.startswith("ann.one:\n") and "\nann.two:\n" in text
    out = tmp_path / "two.db"
    assert cli("restore", "--from", target, "--source", "ann.two", out).exit_code == 0
    assert sqlite3.connect(out).execute("SELECT count(*) FROM message").fetchone() == (5,)


def test_an_untouched_database_is_not_even_materialised(pm, box, tmp_path):
    target, state = tmp_path / "nas", tmp_path / "state"
    sync_source(box, [str(target)], state_dir=state, pm=pm)
    assert FolderOfDatabases.materialised == ["box.one", "box.two"]
    make_db(box / "two.db", 1)
    reports = sync_source(box, [str(target)], state_dir=state, pm=pm)
    assert FolderOfDatabases.materialised == ["box.one", "box.two", "box.two"]
    assert [r.version and r.version.number for r in reports] == [None, 2]
    assert reports[0].detection.path == "unchanged"


def test_full_reads_even_an_untouched_database(pm, box, tmp_path):
    sync_source(box, [str(tmp_path / "nas")], state_dir=tmp_path / "state", pm=pm)
    sync_source(box, [str(tmp_path / "nas")], state_dir=tmp_path / "state", pm=pm, full=True)
    assert FolderOfDatabases.materialised.count("box.one") == 2


def test_a_database_name_the_archive_cannot_use_is_refused(pm, box, tmp_path):
    with pytest.raises(UsageError, match="can't name a source"):
        sync_source(box, [str(tmp_path / "nas")], state_dir=tmp_path / "state", pm=pm,
                    options=SourceOptions(name="../up"))
    assert not (tmp_path / "state").exists() and list((tmp_path / "nas").iterdir()) == []


# -- origin and writing back into the app --------------------------------------------------------


def test_the_origin_is_recorded_and_restore_writes_back_with_the_key(pm, box, tmp_path):
    target, state = tmp_path / "nas", tmp_path / "state"
    sync_source(box, [str(target)], state_dir=state, pm=pm)
    manifest = json.loads((target / "box.one" / "manifest.json").read_text())
    assert manifest["origin"] == {"flavour": "plain", "kind": "folder-of-dbs"}
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    key.chmod(0o600)
    out = tmp_path / "back.db"
    result = cli("restore", "--from", target, "--source", "box.one", "--key-file", key, out)
    assert result.exit_code == 0, result.output
    head, flavour, data = out.read_bytes().split(b"|", 2)
    assert (head, flavour, data[:16]) == (b"s3cret", b"plain", b"SQLite format 3\x00")


def test_write_back_of_a_plain_source_is_one_line(tmp_path):
    make_db(tmp_path / "chat.db", 2)
    target = tmp_path / "nas"
    target.mkdir()
    assert cli("sync", tmp_path / "chat.db", "--to", target, "--state", tmp_path / "state").exit_code == 0
    key = tmp_path / "key"
    key.write_text("k\n")
    key.chmod(0o600)
    result = cli("restore", "--from", target, "--key-file", key, tmp_path / "out.db")
    assert result.exit_code == 2
    assert "there is no app encryption to write it back with" in result.stderr
    assert not (tmp_path / "out.db").exists()


def test_a_forged_origin_is_refused(pm, box, tmp_path):
    target = tmp_path / "nas"
    sync_source(box, [str(target)], state_dir=tmp_path / "state", pm=pm)
    path = target / "box.one" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["origin"] = {"kind": "x" * 300}
    path.write_text(json.dumps(manifest))
    result = cli("restore", "--from", target, "--source", "box.one", tmp_path / "out.db")
    assert result.exit_code != 0 and "origin" in result.stderr


# -- key files ------------------------------------------------------------------------------------


def test_a_key_file_others_can_read_is_refused_without_showing_the_key(tmp_path):
    key = tmp_path / "key"
    key.write_text("hunter2\n")
    key.chmod(0o644)
    with pytest.raises(KeyProblem, match="can be read by others") as raised:
        read_secret_file(key, "key file")
    assert "hunter2" not in str(raised.value)
    key.chmod(0o600)
    assert read_secret_file(key, "key file") == "hunter2"
    key.write_bytes(b"\n\n")
    with pytest.raises(KeyProblem, match="does not hold one line"):
        read_secret_file(key, "key file")


def test_the_config_takes_a_sources_kind_keys_and_settings(tmp_path):
    from syncd.daemon.config import load_config

    config = tmp_path / "config.toml"
    config.write_text(f'''
[[source]]
path = "{tmp_path}/EnMicroMsg.db"
kind = "sqlcipher"
key_file = "{tmp_path}/wechat.key"
settings = {{ compatibility = "1", uin = 12345 }}

[[target]]
url = "{tmp_path}/nas"
''')
    source, = load_config(config).sources
    assert source.kind == "sqlcipher" and source.name == "EnMicroMsg.db"
    assert source.options == SourceOptions(tmp_path / "wechat.key", None, None, {"compatibility": "1", "uin": "12345"})
    config.write_text(config.read_text().replace("kind =", "colour = \"red\"\nkind ="))
    with pytest.raises(UsageError, match=r"source\[1\]\.colour: unknown setting"):
        load_config(config)


def test_settings_on_the_command_line_must_be_key_value(tmp_path):
    make_db(tmp_path / "chat.db", 1)
    result = cli("sync", tmp_path / "chat.db", "--to", tmp_path / "nas", "--setting", "oops")
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
    assert not os.path.exists(tmp_path / "nas")
