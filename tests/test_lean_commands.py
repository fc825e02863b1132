"""Commands import only what they use (issue 11, item 3).

Time is measured in bench/compare.py, not here; this checks what makes it: a pass with nothing new,
`log` and `status`, each run by the real CLI in a fresh interpreter, leave out the modules only a
change, an encrypted target or the daemon needs. A regression shows as the module that crept in.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import Harness

# What none of these commands may load for a plain source and a plain folder target.
HEAVY = {
    "logging",  # syncd.log's loggers import it on first use; nothing here logs
    "pyrage",  # age: only for an encrypted target or an identity given
    "syncd.archive.sealed",
    "syncd.mirror.mirror",  # only a change, or a restore, rebuilds rows
    "syncd.media.store",
    "syncd.daemon.run",
    "zstandard",
    "xxhash",  # the page scan: only for a source whose signature changed
    "syncd_sqlcipher.cipher",  # a kind's heavy parts load once it claims a file
}

LOADED = """
import json, sys
from syncd.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def loaded_by(*args: str) -> set[str]:
    """The modules a CLI command leaves in sys.modules, run as the console script runs it."""
    done = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, check=True)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), done
    return set(report["modules"])


@pytest.fixture
def synced(tmp_path, pm) -> Harness:
    phone = Harness(tmp_path, pm)
    phone.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO message VALUES (1, 'hi')")
    phone.sync()
    return phone


def test_a_pass_with_nothing_new_leaves_the_heavy_parts_out(synced):
    modules = loaded_by("sync", str(synced.source), "--to", str(synced.target), "--state", str(synced.state))
    assert "syncd.sync" in modules  # it did run the pass
    assert not modules & HEAVY, sorted(modules & HEAVY)


@pytest.mark.parametrize("command", [["log", "--from", "{target}"], ["status", "--state", "{state}"]])
def test_log_and_status_leave_the_heavy_parts_out(synced, command):
    args = [a.format(target=synced.target, state=synced.state) for a in command]
    modules = loaded_by(*args)
    assert not modules & HEAVY, sorted(modules & HEAVY)


def test_a_pass_with_a_change_does_load_them(synced):
    """The check above can fail: the same pass with a change in the source loads the scan and the mirror."""
    synced.execute("INSERT INTO message VALUES (2, 'again')")
    modules = loaded_by("sync", str(synced.source), "--to", str(synced.target), "--state", str(synced.state))
    assert {"xxhash", "syncd.mirror.mirror", "zstandard"} <= modules
