"""docs/plugins.md's worked example, installed as its own distribution and run through the conformance suite."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.plugins import backend_classes, open_backend, plugin_info, plugin_manager
from syncd.testing import BackendContract

EXAMPLE = Path(__file__).with_name("example_plugin")


@pytest.fixture(scope="session")
def example_pm(tmp_path_factory):
    """A plugin manager that found the example through its `syncd` entry point, as a user's would."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # Build from a copy: building in place would leave build/ and egg-info in the source tree.
    build = tmp_path_factory.mktemp("example-build") / "example_plugin"
    shutil.copytree(EXAMPLE, build)
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(build)], check=True)
    importlib.invalidate_caches()
    try:
        yield plugin_manager()
    finally:
        subprocess.run([*pip, "uninstall", "--yes", "syncd-example"], check=True)
        sys.modules.pop("syncd_example", None)


def test_the_example_loads_through_its_entry_point(example_pm):
    assert backend_classes(example_pm)["example"].__module__ == "syncd_example"
    assert any(p.name == "example" and p.version == "1.0.0" and p.schemes == ("example",)
               for p in plugin_info(example_pm))


def test_the_example_is_under_100_lines():
    assert len((EXAMPLE / "syncd_example.py").read_text().splitlines()) < 100


class TestExampleBackend(BackendContract):
    @pytest.fixture
    def backend(self, example_pm, tmp_path):
        return open_backend(example_pm, f"example://{tmp_path}")
