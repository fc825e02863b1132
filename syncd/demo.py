"""`syncd demo`: the whole story on a sample WeChat-like database, in plain words."""

from __future__ import annotations

import random
from contextlib import closing
import tempfile
from pathlib import Path
from typing import Callable

import apsw

from . import samples
from .archive.plain import Archive
from .errors import UsageError
from .plugins import open_backend, plugin_manager
from .readback.restore import restore
from .sync import sync

SAMPLE_MESSAGES = 2_000


def run_demo(workdir: Path | None, say: Callable[[str], None]) -> Path:
    """Build a sample chat database, archive four versions of it, and restore an old one."""
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise UsageError(f"{workdir} is not empty", hint="give the demo a new or empty folder")
    phone, nas, state = workdir / "phone", workdir / "nas", workdir / "state"
    for folder in (phone, nas):
        folder.mkdir(parents=True)
    database = phone / "EnMicroMsg.db"
    pm, rng = plugin_manager(), random.Random(7)

    def archive_version(what: str) -> None:
        report = sync(database, [str(nas)], state_dir=state, pm=pm)
        v = report.version
        rows = v.rows
        say(f"  version {v.number}: {what}: +{rows['added']} added, ~{rows['changed']} changed, "
            f"-{rows['deleted']} deleted rows; {report.targets[0].bytes:,} bytes sent to the NAS folder")

    samples.create_wechat(database, messages=SAMPLE_MESSAGES, seed=7)
    say(f"A sample WeChat database with {SAMPLE_MESSAGES:,} messages stands in for your phone's:\n  {database}\n")
    say("syncd copies it privately, finds what changed row by row, keeps each change in its local")
    say(f"state dir first ({state}),\nthen ships it to the target, a folder standing in for a NAS ({nas}).\n")
    archive_version("the first copy, the whole database")

    with _open(database) as db:
        samples.wechat_new_messages(db, rng, 25)
    archive_version("25 new messages arrived")

    with _open(database) as db:
        recalled = samples.wechat_recall(db, rng)
    with _open(database) as db:
        now = db.execute("SELECT content FROM message WHERE msgId = ?", (recalled,)).fetchall()[0][0]
    archive_version(f"message {recalled} was recalled; the phone now shows {now!r}")

    with _open(database) as db:
        chat = samples.wechat_delete_chat(db, rng)
    archive_version(f"the whole chat with {chat} was deleted on the phone")

    old = workdir / "restored-version-2.db"
    old.unlink(missing_ok=True)
    restore(Archive(open_backend(pm, str(nas)), database.name), old, number=2)
    with _open(old) as db:
        text = db.execute("SELECT content FROM message WHERE msgId = ?", (recalled,)).fetchall()[0][0]
        kept = db.execute("SELECT count(*) FROM message WHERE talker = ?", (chat,)).fetchall()[0][0]
    say(f"\nThen version 2 was restored from the NAS folder alone into\n  {old}")
    say(f"and nothing is lost there: message {recalled} still reads {text!r},")
    say(f"and the deleted chat with {chat} still has its {kept} messages.\n")
    say("Try it yourself:")
    say(f"  syncd log --from {nas}")
    say(f"  syncd restore --from {nas} --version 3 {workdir / 'v3.db'}")
    say(f"  syncd verify --from {nas}")
    return workdir


def _open(path: Path) -> closing[apsw.Connection]:
    return closing(apsw.Connection(str(path)))
