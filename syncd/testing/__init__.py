"""A kit for plugin authors: an in-memory backend, and the conformance suites of backends and
source kinds (see syncd.testing.source_contract for the fixtures a source kind's suite takes).

    from syncd.testing import BackendContract

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self):
            return MyBackend.from_url("my://test-server/fresh-folder")

Installing syncd registers `syncd.testing.pytest_plugin` with pytest (the
`pytest11` entry point), which rewrites the suite's asserts and adds fixtures.

`memory://NAME` keeps nothing once the process ends, so syncd's own plugin
manager never loads it; `with_test_backends(pm)` adds it for a test.
"""

from __future__ import annotations

__all__ = ["BackendContract", "MemoryBackend", "SourceKindContract", "with_test_backends"]

# The entry-point group of plugins that only test suites load.
TEST_PLUGINS = "syncd.testing"


def with_test_backends(pm):
    """`pm` with the test-only plugins (the memory backend) loaded too."""
    pm.load_setuptools_entrypoints(TEST_PLUGINS)
    pm.check_pending()
    return pm


def __getattr__(name: str):
    # Imported on first use, so pytest's plugin can ask for assert rewriting
    # of the suite before the suite's module is loaded.
    if name == "BackendContract":
        from .contract import BackendContract

        return BackendContract
    if name == "SourceKindContract":
        from .source_contract import SourceKindContract

        return SourceKindContract
    if name == "MemoryBackend":
        from .memory import MemoryBackend

        return MemoryBackend
    raise AttributeError(name)
