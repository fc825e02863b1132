"""A real `syncd run` process with a phone folder, folder targets and a config, for the daemon tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw

from syncd.archive.manifest import Manifest

# Fast enough for tests; the real defaults are in syncd.daemon.config.DaemonSettings.
FAST = {"quiet": 0.3, "rescan": 5.0, "poll": 0.5, "retry_min": 0.2, "retry_max": 1.0}
WAIT = 60.0  # generous: shared machines stall


def wait_for(predicate, timeout: float = WAIT, what="a condition", interval: float = 0.02):
    """Poll `predicate` until it returns something truthy; fail naming `what` (a text, or a function
    that makes one when needed, such as the daemon's log) after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")


class Rig:
    def __init__(self, root: Path, targets: int = 2, **settings):
        self.root = root
        self.phone = root / "phone"
        self.phone.mkdir(exist_ok=True)
        self.source = self.phone / "chat.db"
        self.state = root / "state"
        self.targets = [root / f"nas{i}" for i in range(1, targets + 1)]
        for target in self.targets:
            target.mkdir(exist_ok=True)
        self.config = root / "config.toml"
        self.settings = FAST | settings
        self.extra_sources: list[Path] = []
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.write_config()

    # -- the phone ------------------------------------------------------------------

    def execute(self, sql: str, *params, path: Path | None = None) -> None:
        db = apsw.Connection(str(path or self.source))
        try:
            db.execute(sql, params).fetchall()
        finally:
            db.close()

    def drop(self, sql: str) -> float:
        """What a sync tool does: write a changed copy beside the file, then rename it over; the rename's time."""
        tmp = self.phone / ".chat.db.partial"
        shutil.copyfile(self.source, tmp)
        self.execute(sql, path=tmp)
        moment = time.monotonic()
        os.replace(tmp, self.source)
        return moment

    # -- the config and the process -------------------------------------------------------

    def write_config(self) -> None:
        lines = [f'state_dir = "{self.state}"']
        for path in [self.source, *self.extra_sources]:
            lines += ["[[source]]", f'path = "{path}"']
        for target in self.targets:
            lines += ["[[target]]", f'url = "{target}"']
        lines.append("[daemon]")
        lines += [f"{key} = {value}" for key, value in self.settings.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, env: dict | None = None) -> subprocess.Popen:
        log = self.root / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "syncd", "run", "--config", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=err, env=environment | (env or {}))
        return self.proc

    def wait_started(self) -> None:
        """Until the daemon's signal handlers are in place (it logs that it started)."""
        wait_for(lambda: "syncd started" in self.logs[-1].read_text(errors="replace"),
                 what=lambda: f"the daemon to start\n{self.log()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, float]:
        """Send `sig` and wait; the exit code and how long it took."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs)

    # -- what the targets hold ------------------------------------------------------------

    def manifest(self, folder: Path, source: str = "chat.db") -> Manifest | None:
        try:
            raw = (folder / source / "manifest.json").read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Manifest.from_bytes(raw, str(folder))

    def local(self, source: str = "chat.db") -> Manifest | None:
        return self.manifest(self.state / "sources" / source / "archive", source)

    def head(self, folder: Path, source: str = "chat.db") -> int:
        manifest = self.manifest(folder, source)
        return manifest.head.number if manifest and manifest.head else 0

    def wait_heads(self, number: int, timeout: float = WAIT, targets: list[Path] | None = None) -> None:
        """Until every target holds at least version `number`."""
        for target in targets or self.targets:
            wait_for(lambda: self.head(target) >= number, timeout,
                     lambda: f"{target.name} to hold version {number}\n{self.log()}")

    def status(self) -> dict:
        proc = subprocess.run([sys.executable, "-m", "syncd", "status", "--json", "--config", str(self.config)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def cpu_seconds(self) -> float:
        """The daemon's user + system CPU time so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
