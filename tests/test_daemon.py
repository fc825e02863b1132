"""`syncd run` as a real process: real file events, real folder targets, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import apsw
import pytest
from click.testing import CliRunner

from daemon_rig import Rig, wait_for
from logical import logical_state
from syncd.archive.plain import Archive
from syncd.cli import main
from syncd.plugins import open_backend
from syncd.readback.restore import restore
from syncd.readback.verify import verify
from syncd_folder import FolderBackend

SCHEMA = ("CREATE TABLE message(id INTEGER PRIMARY KEY, talker TEXT, body TEXT);"
          "INSERT INTO message VALUES (1, 'alice', 'hello')")
# How long idle CPU is measured in the test; SYNCD_IDLE_SECONDS=60 for the figure in docs/daemon.md.
IDLE_SECONDS = float(os.environ.get("SYNCD_IDLE_SECONDS", "10"))


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path)
    rig.execute(SCHEMA)
    yield rig
    rig.kill()


@pytest.fixture
def running(rig):
    """A daemon that has archived the phone's first version to every target."""
    rig.start()
    rig.wait_heads(1)
    return rig


def restores_to_phone(rig: Rig, pm, target) -> None:
    """The target's last version restores to exactly what the phone holds now; every version restores."""
    backend = open_backend(pm, str(target))
    archive = Archive(backend, "chat.db")
    manifest = archive.manifest()
    assert [v.number for v in manifest.versions] == list(range(1, manifest.head.number + 1))
    assert all(not check.problems for check in verify(backend)), verify(backend)
    for version in manifest.versions:
        out = rig.root / f"restored-{target.name}-{version.number}.db"
        restore(archive, out, number=version.number)
    assert logical_state(out) == logical_state(rig.source), f"{target.name}'s last version differs from the phone"


def test_drop_by_rename_reaches_every_target(running, pm, record_property):
    renamed = running.drop("INSERT INTO message VALUES (2, 'bob', 'dropped by a sync tool')")
    latency = {}
    for target in running.targets:
        wait_for(lambda: running.head(target) >= 2, interval=0.005,
                 what=lambda: f"{target.name} to get the drop\n{running.log()}")
        latency[target.name] = time.monotonic() - renamed
    record_property("drop_to_target_seconds", max(latency.values()))
    print(f"\ndrop-to-target latency (quiet period {running.settings['quiet']} s): "
          + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in latency.items()))
    for target in running.targets:
        restores_to_phone(running, pm, target)
    assert "version 2 archived locally" in running.log()


def test_burst_of_in_place_writes_ends_up_on_every_target(running, pm):
    for n in range(2, 40):
        running.execute("INSERT INTO message VALUES (?, 'bob', ?)", n, f"burst {n}")
        running.execute("UPDATE message SET body = ? WHERE id = 1", f"edited {n}")
        time.sleep(0.01)
    wait_for(lambda: all(logical_state(running.source) == logical_state(_restore_head(running, pm, t))
                         for t in running.targets),
             what=lambda: f"the burst to land\n{running.log()}", interval=0.3)
    for target in running.targets:
        restores_to_phone(running, pm, target)
    # The quiet period folds a burst into few versions rather than one per write.
    assert running.head(running.targets[0]) < 20


def test_writes_that_only_reach_the_wal_are_archived(running, pm):
    running.execute("PRAGMA journal_mode=WAL")
    running.wait_heads(2)  # the header change is a version of its own
    app = apsw.Connection(str(running.source))
    app.execute("PRAGMA wal_autocheckpoint=0")  # like an app holding the db open: changes stay in -wal
    try:
        before = running.source.stat().st_mtime_ns
        app.execute("INSERT INTO message VALUES (2, 'bob', 'only in the wal')")
        running.wait_heads(3)
        assert running.source.stat().st_mtime_ns == before, "the test meant the main file to stay untouched"
        for target in running.targets:
            restores_to_phone(running, pm, target)
    finally:
        app.close()


def _restore_head(rig: Rig, pm, target):
    out = rig.root / f"head-{target.name}-{time.monotonic_ns()}.db"
    archive = Archive(open_backend(pm, str(target)), "chat.db")
    if archive.manifest() is None:
        return rig.source.with_name("missing")
    restore(archive, out)
    return out


@pytest.mark.parametrize("outage", ["renamed away", "made a file"])
def test_target_outage_is_caught_up(running, pm, outage):
    down, up = running.targets
    away = down.with_name("away")
    down.rename(away)
    if outage == "made a file":
        down.write_text("not a folder")
    running.drop("INSERT INTO message VALUES (2, 'bob', 'while the NAS was down')")
    running.wait_heads(2, targets=[up])
    running.execute("INSERT INTO message VALUES (3, 'bob', 'still down')")
    running.wait_heads(3, targets=[up])

    def failing():
        [source] = running.status()["sources"]
        report = next(t for t in source["targets"] if t["location"] == str(down))
        return report if report["error"] and report["pending_versions"] == 2 else None

    report = wait_for(failing, what="status to show the outage")
    assert report["version"] == 1 and report["pending_bytes"] > 0 and report["next_retry"]
    text = CliRunner().invoke(main, ["status", "--config", str(running.config)])
    assert text.exit_code == 0, text.output
    assert f"{down}: has version 1, 2 version(s) pending" in text.output
    assert f"{up}: has version 3, up to date" in text.output
    assert "last error:" in text.output and "next retry" in text.output
    assert running.head(up) == 3  # the failing target never held the others back
    if outage == "made a file":
        down.unlink()
    away.rename(down)
    running.wait_heads(3, targets=[down])
    wait_for(lambda: not running.status()["sources"][0]["targets"][0]["error"], what="the error to clear")
    restores_to_phone(running, pm, down)
    assert "(caught up)" in running.log()
    # Rate-limited: one line for the outage however many retries happened.
    assert running.log().count("not updated") <= 3, running.log()


def test_verify_without_from_checks_every_configured_target(running):
    result = CliRunner().invoke(main, ["verify", "--config", str(running.config)])
    assert result.exit_code == 0, result.output
    assert result.output == "".join(f"{t}:\nchat.db: 1 versions, 1 objects: ok\n" for t in running.targets)
    [damaged] = (running.targets[1] / "chat.db" / "objects").iterdir()
    damaged.write_bytes(b"bit rot")
    result = CliRunner().invoke(main, ["verify", "--config", str(running.config)])
    assert result.exit_code == 1
    assert "chat.db: 1 versions, 1 objects: ok" in result.output and "1 problem(s)" in result.output
    result = CliRunner().invoke(main, ["verify", "--config", str(running.config), "--json"])
    assert result.exit_code == 1
    assert [(r["target"], r["ok"]) for r in json.loads(result.output)] == [(str(t), t == running.targets[0])
                                                                          for t in running.targets]
    running.targets[0].rename(running.root / "gone")  # unreadable: reported, and the other still checked
    result = CliRunner().invoke(main, ["verify", "--config", str(running.config)])
    assert result.exit_code == 1
    assert f"error: {running.targets[0]}: " in result.stderr and "1 problem(s)" in result.output


def test_sigterm_when_idle_exits_0_quickly(running):
    code, seconds = running.stop(signal.SIGTERM)
    assert code == 0, running.log()
    assert seconds < 10
    assert "syncd stopped" in running.log()


def test_sigterm_mid_pass_exits_0_and_loses_nothing(rig, pm):
    # A database big enough that the first pass is still running when SIGTERM comes.
    rig.execute("WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
                "INSERT INTO message SELECT i, 'bob', printf('message %d with some text to archive', i) FROM n")
    rig.start()
    wait_for(lambda: (rig.state / "sources" / "chat.db" / "staging").exists(), what="the first pass to start")
    code, seconds = rig.stop(signal.SIGTERM)
    assert code == 0, rig.log()
    assert seconds < 10, rig.log()
    rig.start()
    rig.wait_heads(1)
    for target in rig.targets:
        restores_to_phone(rig, pm, target)


def test_sighup_reloads_the_config(running, pm):
    third = running.root / "nas3"
    third.mkdir()
    other = running.phone / "other.db"
    running.execute(SCHEMA, path=other)
    running.targets.append(third)
    running.extra_sources.append(other)
    running.write_config()
    running.proc.send_signal(signal.SIGHUP)
    running.wait_heads(1, targets=[third])
    for target in running.targets:
        wait_for(lambda: running.head(target, "other.db") == 1, what=f"the new source on {target.name}")
    running.execute("INSERT INTO message VALUES (2, 'bob', 'after the reload')", path=other)
    for target in running.targets:
        wait_for(lambda: running.head(target, "other.db") == 2, what="a change of the new source")
    assert "config reloaded" in running.log()
    # A broken config is refused and the running one stays.
    running.config.write_text("[[source]]\n")
    running.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config not reloaded" in running.log(), what="the bad config to be refused")
    assert "source[1].path: missing" in running.log()
    running.execute("INSERT INTO message VALUES (2, 'bob', 'still watched')")
    running.wait_heads(2)
    code, _ = running.stop()
    assert code == 0


def test_systemd_notifications(rig, tmp_path):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(30)
        rig.start(env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})

        def messages_until(wanted: str) -> list[str]:
            seen = []
            while not any(wanted in m for m in seen):
                seen.append(sock.recv(4096).decode())
            return seen

        first = messages_until("READY=1")
        assert any("STATUS=watching 1 source(s), 2 target(s)" in m for m in first), first
        assert any(m == "WATCHDOG=1" for m in messages_until("WATCHDOG=1"))
        rig.wait_heads(1)
        # Pings keep coming while idle (every 0.2 s here, half of WatchdogSec).
        assert sum(m == "WATCHDOG=1" for m in messages_until("WATCHDOG=1") + messages_until("WATCHDOG=1")) >= 2
        rig.proc.send_signal(signal.SIGTERM)
        assert any("STOPPING=1" in m for m in messages_until("STOPPING=1"))
        assert rig.proc.wait(timeout=30) == 0


def test_idle_means_idle(running, record_property):
    time.sleep(1)  # let the first pass's work settle
    before, started = running.cpu_seconds(), time.monotonic()
    time.sleep(IDLE_SECONDS)
    used, elapsed = running.cpu_seconds() - before, time.monotonic() - started
    record_property("idle_cpu_percent", 100 * used / elapsed)
    print(f"\nidle CPU: {used:.3f} s over {elapsed:.0f} s = {100 * used / elapsed:.3f} %")
    # Not a speed claim: a busy loop would burn most of a core; idle should be near nothing.
    assert used / elapsed < 0.05, f"{used:.2f} s of CPU in {elapsed:.0f} s idle"


def test_run_without_a_config_says_what_to_write_and_where(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    proc = subprocess.run([sys.executable, "-m", "syncd", "run"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 2
    where = tmp_path / "cfg" / "syncd" / "config.toml"
    assert f"error: no config file at {where}" in proc.stderr
    assert "[[source]]" in proc.stderr and "[[target]]" in proc.stderr and "Traceback" not in proc.stderr



# A daemon whose uploads hang: run as its own process, like the real one.
HANGING_DAEMON = """
import sys, time
from pathlib import Path
from syncd.daemon import run as daemon
from syncd.plugins import plugin_manager

def hanging_deliver(*args):
    Path(sys.argv[2]).touch()
    time.sleep(120)

daemon.STOP_GRACE = 1.0
daemon.deliver_to = hanging_deliver
sys.exit(daemon.run_daemon(Path(sys.argv[1]), plugin_manager()))
"""


def test_a_step_outliving_the_grace_period_is_abandoned(rig):
    hung = rig.root / "hung"
    with open(rig.root / "hanging.log", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", HANGING_DAEMON, str(rig.config), str(hung)], stderr=err)
    try:
        wait_for(hung.exists, what="an upload to hang")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (rig.root / "hanging.log").read_text()
    assert code == 0, log
    assert time.monotonic() - started < 10, log
    assert "stopped in the middle of a step" in log
    assert rig.local().head.number == 1  # the local commit came before the hung upload


def _run_in_process_until(rig: Rig, pm, done) -> None:
    """Run a Daemon in this process (signals need the main thread) until `done()`, then SIGTERM it."""
    from syncd.daemon.run import Daemon

    def stop_when_done():
        try:
            wait_for(done, what="the in-process daemon")
        finally:
            signal.pthread_kill(main, signal.SIGTERM)

    main = threading.main_thread().ident
    threading.Thread(target=stop_when_done, daemon=True).start()
    assert Daemon(rig.config, pm).run() == 0


def test_rescan_catches_changes_whose_events_were_lost(tmp_path, pm, monkeypatch):
    """inotify drops events when its queue overflows: the periodic rescan still sees the change."""
    from syncd.daemon import watch

    rig = Rig(tmp_path, rescan=0.5)
    rig.execute(SCHEMA)
    monkeypatch.setattr(watch._SourceHandler, "on_any_event", lambda self, event: None)  # every event lost
    written = threading.Event()

    def change_once_archived():
        if rig.head(rig.targets[0]) >= 1 and not written.is_set():
            rig.execute("INSERT INTO message VALUES (2, 'bob', 'no event for this one')")
            written.set()
        return rig.head(rig.targets[0]) >= 2 and rig.head(rig.targets[1]) >= 2

    _run_in_process_until(rig, pm, change_once_archived)
    for target in rig.targets:
        restores_to_phone(rig, pm, target)


def test_no_secret_reaches_logs_or_status(tmp_path):
    rig = Rig(tmp_path, targets=1)
    rig.execute(SCHEMA)
    secret_url = "nosuchscheme://me:hunter2@127.0.0.1:9/chat"
    rig.config.write_text(rig.config.read_text().replace("[daemon]", f'[[target]]\nurl = "{secret_url}"\n'
                                                         'options = { password = "hunter3" }\n[daemon]'))
    rig.start()
    rig.wait_heads(1)
    wait_for(lambda: "not updated" in rig.log(), what="the failing target to be logged")
    [source] = rig.status()["sources"]
    failing = source["targets"][1]
    assert failing["error"] and failing["url"] == "nosuchscheme://me:***@127.0.0.1:9/chat"
    rig.stop()
    shown = rig.log() + json.dumps(rig.status()) + "".join(p.read_text() for p in rig.state.rglob("*.json"))
    assert "hunter2" not in shown and "hunter3" not in shown


def test_backoff_doubles_up_to_the_cap():
    from syncd.delivery.retry import target_backoff as backoff

    assert [backoff(n, 5.0, 60.0) for n in range(1, 7)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_backoff_goes_on_after_a_restart(tmp_path):
    rig = Rig(tmp_path, retry_min=1.0, retry_max=1.0)
    rig.execute(SCHEMA)
    rig.targets[1].rmdir()  # never there

    def failing() -> dict:
        return rig.status()["sources"][0]["targets"][1]

    try:
        rig.start()
        wait_for(lambda: failing()["failures"] >= 2, what="two failures")
        rig.stop()
        before = failing()
        rig.start()
        after = wait_for(lambda: (f := failing())["failed_at"] != before["failed_at"] and f,
                         what="a failure after the restart")
    finally:
        rig.kill()
    # Not back to 1: a crash loop must not reset the backoff against a server that is down.
    assert after["failures"] > before["failures"]
    assert rig.head(rig.targets[0]) == 1


def test_a_configured_encrypted_target_gets_only_ciphertext(rig, pm, tmp_path):
    """`encrypt_to = [...]` in a [[target]]: the daemon needs only the recipient; restore needs the key."""
    from syncd.archive.crypto import keygen, load_identities
    from syncd.readback.restore import open_archive

    identity = tmp_path / "key.txt"
    recipient = keygen(identity)
    sealed = rig.targets[1]
    rig.config.write_text(rig.config.read_text().replace(
        f'url = "{sealed}"', f'url = "{sealed}"\nencrypt_to = ["{recipient}"]'))
    rig.start()
    wait_for(lambda: [t["version"] for t in rig.status()["sources"][0]["targets"]] == [1, 1],
             what=lambda: f"both targets at version 1 in status\n{rig.log()}")
    everything = b"".join(p.name.encode() + p.read_bytes() for p in sealed.rglob("*") if p.is_file())
    assert b"chat.db" not in everything and b"message" not in everything
    archive = open_archive(open_backend(pm, str(sealed)), None, load_identities(identity))
    out = tmp_path / "restored.db"
    restore(archive, out)
    assert logical_state(out) == logical_state(rig.source)
