"""sd_notify: datagrams to a real socket bound by the test, as systemd's would be."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from syncd.daemon.notify import notify, watchdog_interval


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if request.param == "path":
            address = str(tmp_path / "notify")
            sock.bind(address)
        else:
            name = f"syncd-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            address = "@" + name
        sock.settimeout(5)
        yield sock, address


def test_messages_arrive_as_single_datagrams(listener):
    sock, address = listener
    env = {"NOTIFY_SOCKET": address}
    assert notify("READY=1\nSTATUS=watching 1 source(s)", env)
    assert notify("WATCHDOG=1", env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=watching 1 source(s)"
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_systemd_nothing_happens(tmp_path):
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False  # never raises


def test_watchdog_interval_is_half_of_watchdog_sec():
    assert watchdog_interval({"WATCHDOG_USEC": "300000000"}) == 150.0
    assert watchdog_interval({"WATCHDOG_USEC": "300000000", "WATCHDOG_PID": str(os.getpid())}) == 150.0
    assert watchdog_interval({"WATCHDOG_USEC": "300000000", "WATCHDOG_PID": "1"}) is None  # meant for another
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
