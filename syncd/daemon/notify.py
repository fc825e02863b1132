"""sd_notify without a dependency: one datagram per message to `$NOTIFY_SOCKET`.

Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op, so the daemon runs
the same way from a terminal.
"""

from __future__ import annotations

import os
import socket


def notify(message: str, env: dict | None = None) -> bool:
    """Send `message` (e.g. "READY=1\\nSTATUS=idle") to systemd; False if nobody listens."""
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False  # a lost status line must never stop the daemon
    return True


def watchdog_interval(env: dict | None = None) -> float | None:
    """How often to send WATCHDOG=1 (half of WatchdogSec), or None when systemd doesn't ask."""
    env = env if env is not None else os.environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None
