"""`kill -9` a real daemon at random moments while the phone keeps changing: nothing is lost or torn."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from daemon_rig import Rig, wait_for
from logical import logical_state
from syncd.archive.plain import Archive
from syncd.plugins import open_backend
from syncd.readback.restore import restore

KILLS = int(os.environ.get("SYNCD_KILLS", "15"))
# Big enough that a pass (snapshot, diff, local commit, uploads) takes a noticeable
# share of the time between kills, so kills land inside every step.
MESSAGES = 30_000


def change(rig: Rig, step: int, rng: random.Random) -> None:
    """One app change, written in place or dropped by rename, like the phone's sync tool does."""
    sql = rng.choice([
        f"INSERT INTO message SELECT max(id) + 1, 'bob', 'step {step}' FROM message",
        f"UPDATE message SET body = 'recalled at step {step}' WHERE id = {rng.randint(1, MESSAGES)}",
        f"DELETE FROM message WHERE id IN (SELECT id FROM message ORDER BY random() LIMIT 50)",
        f"UPDATE message SET talker = 'carol{step}' WHERE id % 97 = {step % 97}",
    ])
    if rng.random() < 0.5:
        rig.drop(sql)
    else:
        rig.execute(sql)


def test_kill_9_in_a_loop_loses_nothing(tmp_path, pm):
    rng = random.Random(int(os.environ.get("SYNCD_SEED", time.time_ns())))
    rig = Rig(tmp_path, quiet=0.05)
    rig.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, talker TEXT, body TEXT);"
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MESSAGES}) "
                "INSERT INTO message SELECT i, 'alice', printf('message %d: %s', i, hex(randomblob(40))) FROM n")
    states = [logical_state(rig.source)]  # every state the phone was ever in
    try:
        for step in range(KILLS):
            rig.start()
            time.sleep(rng.uniform(0.0, 0.4))
            change(rig, step, rng)
            states.append(logical_state(rig.source))
            time.sleep(rng.uniform(0.0, 1.2))
            rig.proc.send_signal(signal.SIGKILL)
            rig.proc.wait(timeout=30)
        rig.start()
        final = states[-1]
        head = wait_for(lambda: _converged(rig, pm, final), interval=0.3,
                        what=lambda: f"the targets to converge\n{rig.log()[-3000:]}")
        rig.wait_started()  # converged may be true before the new daemon can take SIGTERM
        code, _ = rig.stop(signal.SIGTERM)
        assert code == 0
    finally:
        rig.kill()

    for target in rig.targets:
        manifest = rig.manifest(target)
        assert [v.number for v in manifest.versions] == list(range(1, head + 1)), "gaps or duplicates"
        proc = subprocess.run([sys.executable, "-m", "syncd", "verify", "--from", str(target)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        archive = Archive(open_backend(pm, str(target)), "chat.db")
        for version in manifest.versions:
            out = tmp_path / f"{target.name}-{version.number}.db"
            restore(archive, out, number=version.number)
            restored = logical_state(out)
            # Each version is a state the phone really was in: nothing torn, nothing invented.
            assert restored in states, f"{target.name} version {version.number} is no state the phone had"
        assert restored == final, f"{target.name}'s last version is not the phone's last state"
    print(f"\n{KILLS} kills, {head} versions on every target")


def _converged(rig: Rig, pm, final: dict) -> int:
    """The local head's number once it is the phone's last state and every target holds it; else 0."""
    local = rig.local()
    if local is None or any(rig.head(target) != local.head.number for target in rig.targets):
        return 0
    out = rig.root / f"local-head-{time.monotonic_ns()}.db"
    restore(Archive(open_backend(pm, str(rig.state / "sources" / "chat.db" / "archive")), "chat.db"), out)
    return local.head.number if logical_state(out) == final else 0
