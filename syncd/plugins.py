"""Plugin discovery: storage backends (and later, other extensions) come through pluggy.

Built-in plugins are ordinary packages registered under the `syncd` entry-point
group, exactly like third-party ones. The plugin manager is built by
`plugin_manager()` and passed to whoever needs it; there is no global one.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pluggy

from .backend import Backend
from .errors import PermanentError

PROJECT = "syncd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Hooks:
    """The hooks a syncd plugin may implement."""

    @hookspec
    def register_backends(self) -> list[type[Backend]]:
        """Return the Backend classes this plugin provides.

        Each class names its URL schemes in `schemes` and builds itself with
        `from_url(url)`.
        """


def plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with every installed `syncd` plugin loaded and checked."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Hooks)
    pm.load_setuptools_entrypoints(PROJECT)
    pm.check_pending()
    return pm


def backend_classes(pm: pluggy.PluginManager) -> dict[str, type[Backend]]:
    """Backend classes by URL scheme."""
    return {scheme: cls for classes in pm.hook.register_backends() for cls in classes for scheme in cls.schemes}


def scheme_of(url: str) -> str:
    """A plain path is a folder target; anything else names its scheme."""
    if url.startswith(("/", ".", "~")) or "://" not in url and ":" not in url:
        return "file"
    return urlsplit(url).scheme.lower()


def open_backend(pm: pluggy.PluginManager, url: str) -> Backend:
    classes = backend_classes(pm)
    scheme = scheme_of(url)
    if scheme not in classes:
        known = ", ".join(sorted(f"{s}://" for s in classes)) or "none"
        raise PermanentError(
            f"no storage plugin handles {scheme!r} targets",
            hint=f"known schemes: {known}; is the plugin installed?",
        )
    if scheme == "file" and "://" not in url:
        url = Path(url).expanduser().absolute().as_uri()
    return classes[scheme].from_url(url)
