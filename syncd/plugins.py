"""Plugin discovery: storage backends (and later, other extensions) come through pluggy.

Built-in plugins are ordinary packages registered under the `syncd` entry-point
group, exactly like third-party ones. The plugin manager is built by
`plugin_manager()` and passed to whoever needs it; there is no global one.
"""

from __future__ import annotations

from dataclasses import dataclass
import inspect
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pluggy

from .backend import Backend
from .errors import PermanentError, UnusableTarget

if TYPE_CHECKING:
    from .archive.manifest import Version

PROJECT = "syncd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Hooks:
    """The hooks a syncd plugin may implement."""

    @hookspec
    def register_backends(self) -> list[type[Backend]]:
        """Return the Backend classes this plugin provides.

        Each class names its URL schemes in `schemes`, may show the URL forms it
        takes in `syntax` (for hints), and builds itself with `from_url(url)`.
        """

    @hookspec
    def version_persisted(self, source: str, version: Version) -> None:
        """Called once a new version of `source` is persisted in the local archive.

        The version is durable by then (the local commit point has passed) but
        may not have reached any target yet. An exception raised here stops the
        pass; the version stays queued and goes out on the next one.
        """

    @hookspec
    def target_updated(self, source: str, location: str, version: int) -> None:
        """Called when the target at `location` was brought up to `version` of `source`.

        Only passes that sent something call it; `location` is the target's URL
        without credentials.
        """


def plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with every installed `syncd` plugin loaded and checked."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Hooks)
    pm.load_setuptools_entrypoints(PROJECT)
    pm.check_pending()
    return pm


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str | None  # of the distribution that provides it; None when registered by hand
    schemes: tuple[str, ...]


def plugin_info(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """What is loaded: each plugin's name, its distribution's version, and the URL schemes it handles."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    backends = {id(impl.plugin): impl.function() for impl in pm.hook.register_backends.get_hookimpls()}
    found = []
    for name, plugin in pm.list_name_plugin():
        dist = dists.get(id(plugin))
        schemes = tuple(s for cls in backends.get(id(plugin), []) for s in cls.schemes)
        found.append(PluginInfo(name, dist.version if dist else None, schemes))
    return sorted(found, key=lambda info: info.name)


def backend_classes(pm: pluggy.PluginManager) -> dict[str, type[Backend]]:
    """Backend classes by URL scheme."""
    return {scheme: cls for classes in pm.hook.register_backends() for cls in classes for scheme in cls.schemes}


def scheme_of(url: str) -> str:
    """A plain path is a folder target; anything else names its scheme."""
    if url.startswith(("/", ".", "~")) or "://" not in url and ":" not in url:
        return "file"
    return urlsplit(url).scheme.lower()


def url_syntax(cls: type[Backend]) -> tuple[str, ...]:
    """The URL forms a backend class takes, as it declares them in `syntax` (else `scheme://…`)."""
    return tuple(getattr(cls, "syntax", ())) or tuple(f"{scheme}://…" for scheme in cls.schemes)


def open_backend(pm: pluggy.PluginManager, url: str, options: dict | None = None) -> Backend:
    """The backend for `url`; `options` (from a [[target]] table of the config file) go to its
    `from_url` as keyword arguments.

    A URL or options no plugin can use raise UnusableTarget (exit 2): `from_url` only
    parses (it does no network I/O), so whatever it refuses is the URL's fault.
    """
    if not url.strip():
        # An unset variable (`--to "$NAS"`) would otherwise mean the current folder.
        raise UnusableTarget("the target URL is empty", hint="is the variable that should hold it set?")
    classes = backend_classes(pm)
    scheme = scheme_of(url)
    if scheme not in classes:
        plugins = sorted(set(classes.values()), key=lambda cls: cls.schemes[0])
        known = "; ".join(form for cls in plugins for form in url_syntax(cls)) or "none"
        raise UnusableTarget(f"no storage plugin handles {scheme!r} targets",
                             hint=f"targets look like: {known}; is the plugin installed?")
    if scheme == "file" and "://" not in url:
        url = Path(url).expanduser().absolute().as_uri()
    cls = classes[scheme]
    accepted = inspect.signature(cls.from_url).parameters
    unknown = sorted(set(options or {}) - set(accepted) - {"url"})
    if unknown:
        raise UnusableTarget(f"{scheme} targets take no option {unknown[0]!r}",
                             hint=f"options they take: {', '.join(sorted(set(accepted) - {'url'})) or 'none'}")
    try:
        return cls.from_url(url, **(options or {}))
    except UnusableTarget:
        raise
    except PermanentError as e:
        raise UnusableTarget(str(e), hint=e.hint) from None
    except ValueError as e:  # urllib's own parsing: a port out of range, a bad IPv6 address
        raise UnusableTarget(f"a {scheme} target URL can't be parsed: {e}",
                             hint=f"{scheme} targets look like: {'; '.join(url_syntax(cls))}") from None
