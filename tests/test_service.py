"""systemd units: the repository's and the installed ones pass `systemd-analyze --user verify` silently."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.daemon.service import REPOSITORY_EXECUTABLE, UNITS, installed_executable, render_units

REPOSITORY_UNITS = Path(__file__).resolve().parents[1] / "systemd"


def analyze(units: list[Path], home: Path, runtime: Path) -> str:
    """Everything `systemd-analyze --user verify` says: any line at all is a failure."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    runtime.mkdir(exist_ok=True, mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(home))
    proc = subprocess.run(["systemd-analyze", "--user", "verify", *map(str, units)],
                          capture_output=True, text=True, env=env, timeout=120)
    return (proc.stdout + proc.stderr).strip() + (f"\n(exit {proc.returncode})" if proc.returncode else "")


def test_repository_units_are_the_rendered_templates():
    for name, text in render_units(REPOSITORY_EXECUTABLE).items():
        assert (REPOSITORY_UNITS / name).read_text() == text, f"systemd/{name} drifted from syncd/service.py"


def test_repository_units_verify_cleanly(tmp_path):
    # %h/.local/bin/syncd must exist for verify: give it a HOME where it does.
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "syncd").symlink_to(installed_executable())
    assert analyze([REPOSITORY_UNITS / u for u in UNITS], home, tmp_path / "run") == ""


def test_the_check_catches_a_bad_unit(tmp_path):
    bad = tmp_path / "syncd.service"
    bad.write_text(render_units(str(installed_executable()))["syncd.service"].replace("Restart=", "Restrat="))
    assert "Restrat" in analyze([bad], tmp_path, tmp_path / "run")


def test_service_install_writes_units_for_this_installation(tmp_path):
    unit_dir = tmp_path / "units"
    config = tmp_path / "my config dir" / "c.toml"
    result = CliRunner().invoke(main, ["service", "install", "--unit-dir", str(unit_dir),
                                       "--config", str(tmp_path / "c.toml")])
    assert result.exit_code == 0, result.output
    executable = installed_executable()
    assert executable.is_file() and Path(os.path.realpath(executable)) == executable
    service = (unit_dir / "syncd.service").read_text()
    assert f"ExecStart={executable} run --config {tmp_path / 'c.toml'}\n" in service
    assert f"ExecStart={executable} verify --config {tmp_path / 'c.toml'}\n" in (
        unit_dir / "syncd-verify.service").read_text()
    for line in ("systemctl --user daemon-reload", "systemctl --user enable --now syncd.service syncd-verify.timer",
                 "loginctl enable-linger $USER", f"systemctl --user link {unit_dir / 'syncd.service'}"):
        assert line in result.output
    assert analyze([unit_dir / u for u in UNITS], tmp_path, tmp_path / "run") == ""
    spaced = CliRunner().invoke(main, ["service", "install", "--unit-dir", str(unit_dir), "--config", str(config)])
    assert spaced.exit_code == 1 and "spaces" in spaced.stderr

