"""A real `syncd run` process watching a source's media folder like its database: new files reach
every target, a burst of them is one pass, and each target's media restores through the real CLI."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from daemon_rig import Rig, wait_for
from test_bad_input import cli

from syncd.archive.manifest import Manifest
from syncd.media.listing import read_listing
from syncd.plugins import open_backend, plugin_manager

SCHEMA = ("CREATE TABLE message(id INTEGER PRIMARY KEY, talker TEXT, body TEXT);"
          "INSERT INTO message VALUES (1, 'alice', 'hello')")
BURST = 60


class MediaRig(Rig):
    """The rig's phone with a media folder beside its database, named in the source's config."""

    def write_config(self) -> None:
        self.media = self.phone / "Media"
        self.media.mkdir(exist_ok=True)
        super().write_config()
        text = self.config.read_text().replace(f'path = "{self.source}"\n',
                                               f'path = "{self.source}"\nmedia = ["{self.media}"]\n', 1)
        self.config.write_text(text)


@pytest.fixture
def rig(tmp_path):
    rig = MediaRig(tmp_path, quiet=1.0)
    rig.execute(SCHEMA)
    rnd = random.Random(5)
    for i in range(20):
        (rig.media / f"photo{i}.jpg").write_bytes(rnd.randbytes(rnd.randrange(100, 50_000)))
    yield rig
    rig.kill()


def media_on(target: Path) -> set[str]:
    """The paths of the media listing current at the head of `target`."""
    try:
        manifest = Manifest.from_bytes((target / "chat.db/manifest.json").read_bytes(), str(target))
    except FileNotFoundError:
        return set()
    listing = manifest.media_at()
    if listing is None:
        return set()
    return {f.path for f in read_listing(open_backend(plugin_manager(), str(target)), listing)}


def test_the_daemon_archives_a_burst_of_new_media_in_one_pass(rig):
    rig.start()
    for target in rig.targets:
        wait_for(lambda: len(media_on(target)) == 20, what=lambda: f"{target.name} to get the media\n{rig.log()}")
    before = rig.log().count("media archived locally")
    for i in range(BURST):  # a phone's backup landing: many files within the quiet period
        (rig.media / "new" / f"{i // 10}").mkdir(parents=True, exist_ok=True)
        (rig.media / "new" / f"{i // 10}" / f"voice{i}.opus").write_bytes(f"voice note {i}".encode() * 50)
    for target in rig.targets:
        wait_for(lambda: len(media_on(target)) == 20 + BURST, what=lambda: f"{target.name} to get the burst\n{rig.log()}")
    time.sleep(1.5)  # a second pass, if the burst made one, has had time to log
    assert rig.log().count("media archived locally") - before == 1, rig.log()
    out = rig.root / "back"
    out.mkdir()
    result = cli("restore", out / "chat.db", "--from", rig.targets[1], "--media", out / "media")
    assert result.exit_code == 0, result.output
    restored = {p.relative_to(out / "media/Media").as_posix(): p.read_bytes()
                for p in (out / "media/Media").rglob("*") if p.is_file()}
    assert restored == {p.relative_to(rig.media).as_posix(): p.read_bytes() for p in rig.media.rglob("*") if p.is_file()}
    assert "Traceback" not in rig.log()


def test_a_media_entry_that_is_not_a_list_of_folders_is_named(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path}/state"\n[[source]]\npath = "{tmp_path}/chat.db"\n'
                      f'media = "{tmp_path}/Media"\n[[target]]\nurl = "{tmp_path}/nas"\n')
    result = cli("config", "check", "--config", config)
    assert result.exit_code == 2 and "source[1].media" in result.stderr.splitlines()[0], result.output
