"""The pytest side of the kit, loaded by the `pytest11` entry point of the syncd distribution.

It makes pytest rewrite the asserts of the conformance suite (so a failing
contract test shows the values involved) and offers a few fixtures.
"""

from __future__ import annotations

import uuid

import pytest

pytest.register_assert_rewrite("syncd.testing.contract", "syncd.testing.source_contract")


@pytest.fixture
def memory_backend():
    """An empty in-memory backend, dropped after the test."""
    from syncd.testing.memory import MemoryBackend

    name = f"test-{uuid.uuid4().hex}"
    yield MemoryBackend(name)
    MemoryBackend.forget(name)


@pytest.fixture
def syncd_plugin_manager():
    """A fresh plugin manager with every installed syncd plugin loaded, and the memory backend."""
    from syncd.plugins import plugin_manager
    from syncd.testing import with_test_backends

    return with_test_backends(plugin_manager())
