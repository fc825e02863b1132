"""Watching: the mount's filesystem type picks inotify or polling; real events reach the daemon."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading

import pytest

from syncd.daemon import watch
from syncd.capture.snapshot import file_identity as signature
from syncd.daemon.watch import Watcher, filesystem_type, needs_polling

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:50 / /mnt/nas rw,relatime shared:7 - nfs4 nas:/export rw,vers=4.2
41 27 0:51 / /mnt/nas/photos rw - cifs //nas/photos rw
42 27 0:52 / /home/me/My\\040Drive rw - fuse.rclone gdrive: rw
43 27 0:53 / /media/usb rw - fuseblk /dev/sdb1 rw
44 27 0:54 / /mnt/stacked rw - nfs nas:/a rw
45 27 0:55 / /mnt/stacked rw - ext4 /dev/sdc1 rw
"""


@pytest.mark.parametrize("path,fstype,polls", [
    ("/home/me/Backups/chat.db", "ext4", False),
    ("/mnt/nas/wechat/EnMicroMsg.db", "nfs4", True),
    ("/mnt/nas/photos/x.db", "cifs", True),
    ("/mnt/nasty/x.db", "ext4", False),  # a prefix of a mount point's name is not inside it
    ("/home/me/My Drive/sms.db", "fuse.rclone", True),
    ("/media/usb/chat.db", "fuseblk", False),
    ("/mnt/stacked/x.db", "ext4", False),  # the mount on top wins
])
def test_filesystem_type_picks_the_observer(path, fstype, polls):
    assert filesystem_type(path, MOUNTINFO) == fstype
    assert needs_polling(fstype) is polls


def test_this_machines_mountinfo_is_readable(tmp_path):
    assert filesystem_type(tmp_path) != ""


class Events:
    def __init__(self):
        self.names: list[str] = []
        self.seen = threading.Event()

    def __call__(self, name: str) -> None:
        self.names.append(name)
        self.seen.set()

    def expect(self, what: str) -> None:
        assert self.seen.wait(10), f"no event for {what}"
        self.seen.clear()

    def quiet(self, seconds: float = 0.5) -> bool:
        return not self.seen.wait(seconds)


@pytest.fixture(params=["inotify", "polling"])
def watched(request, tmp_path):
    phone = tmp_path / "phone"
    phone.mkdir()
    source = phone / "chat.db"
    source.write_bytes(b"v1")
    (phone / "other.db").write_bytes(b"x")
    events = Events()
    # Polling is what a network mount gets: pretend this folder is on NFS.
    mountinfo = f"27 1 254:0 / {tmp_path} rw - nfs nas:/x rw\n" if request.param == "polling" else None
    watcher = Watcher([("chat", source)], events, poll_interval=0.1, mountinfo=mountinfo)
    watcher.start()
    assert watcher.sources[0].mode == request.param
    yield source, events
    watcher.stop()


def test_atomic_replace_in_place_write_and_wal_are_seen(watched):
    source, events = watched
    phone = source.parent
    (phone / ".chat.db.partial").write_bytes(b"v2")
    os.replace(phone / ".chat.db.partial", source)
    events.expect("a rename over the database")
    with open(source, "ab") as f:
        f.write(b"more")
    events.expect("an in-place write")
    (phone / "chat.db-wal").write_bytes(b"wal")
    events.expect("a new -wal")
    with open(phone / "chat.db-wal", "ab") as f:
        f.write(b"frames")
    events.expect("a write to the -wal")
    events.quiet(0.3)
    events.seen.clear()
    (phone / "other.db").write_bytes(b"y")
    (phone / "chat.db-shm").write_bytes(b"y")
    with open(source, "rb") as f:  # our own snapshot reads it: that must not wake us
        f.read()
    assert events.quiet(), "an unrelated file, the -shm or a read woke the watcher"
    assert set(events.names) == {"chat"}


def test_a_missing_folder_is_watched_once_it_appears(tmp_path, caplog):
    source = tmp_path / "later" / "chat.db"
    events = Events()
    watcher = Watcher([("chat", source)], events, poll_interval=0.1)
    with caplog.at_level(logging.WARNING, logger="syncd"):
        watcher.start()
    try:
        assert watcher.sources[0].mode == "none"
        assert "does not exist yet" in caplog.text
        source.parent.mkdir()
        watcher.refresh()
        assert watcher.sources[0].mode == "inotify"
        source.write_bytes(b"x")
        events.expect("a database in the new folder")
    finally:
        watcher.stop()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EMFILE])
def test_watch_limits_fall_back_to_polling_with_one_line(tmp_path, monkeypatch, caplog, code):
    sources = []
    for n in range(3):
        (tmp_path / f"p{n}").mkdir()
        sources.append((f"s{n}", tmp_path / f"p{n}" / "chat.db"))

    def limited(self, *args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(watch.InotifyObserver, "schedule", limited)
    events = Events()
    watcher = Watcher(sources, events, poll_interval=0.1)
    with caplog.at_level(logging.WARNING, logger="syncd"):
        watcher.start()
    try:
        assert [w.mode for w in watcher.sources] == ["polling"] * 3
        assert caplog.text.count("inotify limit reached") == 1
        (tmp_path / "p2" / "chat.db").write_bytes(b"x")
        events.expect("a change seen by polling")
        assert events.names[-1] == "s2"
    finally:
        watcher.stop()


def test_signature_covers_the_companions(tmp_path):
    db = tmp_path / "chat.db"
    db.write_bytes(b"x")
    first = signature(db)
    (tmp_path / "chat.db-wal").write_bytes(b"w")
    second = signature(db)
    assert first != second
    shutil.copy(db, tmp_path / "copy")
    os.replace(tmp_path / "copy", db)  # same size and bytes, new inode
    assert signature(db) != second
    assert signature(db) == signature(db)
