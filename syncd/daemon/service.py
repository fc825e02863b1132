"""systemd user units for the daemon and its weekly verify, written for the current installation.

The files in the repository's `systemd/` folder are these same templates rendered
for `%h/.local/bin/syncd` (where `pip install --user` and pipx put the script);
a test keeps them identical.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..errors import SyncdError

REPOSITORY_EXECUTABLE = "%h/.local/bin/syncd"

# Hardening that works in a user unit. Filesystem namespacing (ProtectSystem,
# PrivateTmp…) needs a user namespace there: PrivateUsers=yes (systemd 252).
# Not ProtectHome or ProtectSystem=strict: phone drops and targets may be anywhere
# under $HOME, /mnt or /media.
HARDENING = """\
PrivateUsers=yes
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
# The state dir holds the chats in the clear: only the user may read it.
UMask=0077
"""

DAEMON_UNIT = """\
[Unit]
Description=syncd: archive every version of the phone's chat database to your targets

[Service]
Type=notify
NotifyAccess=main
ExecStart={exe} run{config}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=30s
# syncd pings at half this interval, including between uploads of a long pass.
WatchdogSec=5min
# SIGTERM finishes or abandons the current step within a few seconds.
TimeoutStopSec=20s
Nice=10
IOSchedulingClass=idle
{hardening}
[Install]
WantedBy=default.target
"""

VERIFY_UNIT = """\
[Unit]
Description=syncd: check every object on every target against its manifest

[Service]
Type=oneshot
ExecStart={exe} verify{config}
Nice=19
IOSchedulingClass=idle
{hardening}"""

VERIFY_TIMER = """\
[Unit]
Description=Weekly syncd verify of every target

[Timer]
OnCalendar=weekly
# Run at the next boot if the machine was off at the time.
Persistent=true
RandomizedDelaySec=1h

[Install]
WantedBy=timers.target
"""

UNITS = ("syncd.service", "syncd-verify.service", "syncd-verify.timer")


def default_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "systemd" / "user"


def installed_executable() -> Path:
    """The real path of this installation's `syncd` script."""
    beside = Path(sys.executable).with_name("syncd")  # the venv's bin/, without resolving its python link
    found = beside if beside.is_file() else shutil.which("syncd")
    if not found:
        raise SyncdError("can't find the `syncd` script of this installation",
                         hint="install syncd with pip or pipx so that `syncd` is on PATH")
    return Path(os.path.realpath(found))


def render_units(executable: str, config: Path | None = None) -> dict[str, str]:
    """The three unit files, by name, running `executable` (with `--config` when one is given)."""
    if any(c.isspace() for c in executable) or (config and any(c.isspace() for c in str(config))):
        raise SyncdError("paths with spaces can't be written into a unit's ExecStart unquoted",
                         hint="install syncd (and put the config) under a path without spaces")
    values = {"exe": executable, "config": f" --config {config}" if config else "", "hardening": HARDENING}
    return {"syncd.service": DAEMON_UNIT.format(**values),
            "syncd-verify.service": VERIFY_UNIT.format(**values),
            "syncd-verify.timer": VERIFY_TIMER}


def install_units(unit_dir: Path, executable: Path, config: Path | None = None) -> list[Path]:
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(str(executable), config).items():
        path = unit_dir / name
        path.write_text(text)
        written.append(path)
    return written


def next_steps(unit_dir: Path) -> str:
    """What the user runs after the units are written."""
    custom = unit_dir != default_unit_dir()
    note = (f"# {unit_dir} is not systemd's user unit folder: link the units first\n"
            f"systemctl --user link {' '.join(str(unit_dir / u) for u in UNITS)}\n") if custom else ""
    return (note + "systemctl --user daemon-reload\n"
            "systemctl --user enable --now syncd.service syncd-verify.timer\n"
            "systemctl --user status syncd.service     # and: journalctl --user -u syncd -f\n"
            "# On a headless NAS, keep it running with nobody logged in:\n"
            "loginctl enable-linger $USER\n")
