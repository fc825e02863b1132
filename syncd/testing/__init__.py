"""A kit for plugin authors: an in-memory backend and the Backend conformance suite.

    from syncd.testing import BackendContract

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self):
            return MyBackend.from_url("my://test-server/fresh-folder")

Installing syncd registers `syncd.testing.pytest_plugin` with pytest (the
`pytest11` entry point), which rewrites the suite's asserts and adds fixtures.
"""

__all__ = ["BackendContract", "MemoryBackend"]


def __getattr__(name: str):
    # Imported on first use, so pytest's plugin can ask for assert rewriting
    # of the suite before the suite's module is loaded.
    if name == "BackendContract":
        from .contract import BackendContract

        return BackendContract
    if name == "MemoryBackend":
        from .memory import MemoryBackend

        return MemoryBackend
    raise AttributeError(name)
