"""Plugin discovery: storage backends, source kinds and app profiles come through pluggy.

Built-in plugins are ordinary packages registered under the `syncd` entry-point
group, exactly like third-party ones. The plugin manager is built by
`plugin_manager()` and passed to whoever needs it; there is no global one.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

import pluggy

from .backend import Backend
from .errors import PermanentError, SourceError, UnusableTarget, UsageError
from .source import SourceKind, SourceOptions

if TYPE_CHECKING:
    from .app import AppProfile
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
    def register_sources(self) -> list[type[SourceKind]]:
        """Return the source kinds this plugin provides (see syncd.source).

        Each class names itself in `kind`, says in `recognises(path)` whether a path is its
        kind, and is built as `cls(path, options, workdir)`.
        """

    @hookspec
    def register_apps(self) -> list[type[AppProfile]]:
        """Return the app profiles this plugin provides (see syncd.app).

        Each class names its app in `app`, says in `recognises(db)` from the schema alone
        whether a database is that app's, and is opened as `cls(db)` on a read-only connection.
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
    """A plugin manager with every installed `syncd` plugin loaded and checked.

    Plugins are found as pluggy's `load_setuptools_entrypoints` finds them (the first of a
    name wins), but by reading the entry-point files directly: importing importlib.metadata
    alone costs about as much as a pass that finds nothing new.
    """
    pm = _PluginManager(PROJECT)
    pm.add_hookspecs(Hooks)
    for name, value in entry_points(PROJECT):
        if pm.get_plugin(name) is None and not pm.is_blocked(name):
            pm.register(_load(value), name=name)
    pm.check_pending()
    return pm


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, finding a module plugin's hooks without a static lookup of every name.

    pluggy looks each name of a plugin up with `inspect.getattr_static`, so that no property
    runs; a module's names are its `__dict__`, which runs nothing, and only marked functions are
    hooks. Registering the built-in modules that way takes a third of the time, which a pass with
    nothing new feels (issue 11). Other plugins (classes, instances) get pluggy's own lookup.
    """

    def parse_hookimpl_opts(self, plugin, name: str):
        if isinstance(plugin, ModuleType) and not hasattr(vars(plugin).get(name), f"{PROJECT}_impl"):
            return None
        return super().parse_hookimpl_opts(plugin, name)


def entry_points(group: str) -> list[tuple[str, str]]:
    """(name, "module[:attr]") of every entry point in `group` of the distributions on sys.path,
    in sys.path order: what `importlib.metadata.entry_points(group=group)` lists."""
    found = []
    for entry in sys.path:
        try:
            names = sorted(name for name in os.listdir(entry or ".") if name.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file, or a folder that isn't there
            continue
        for meta in names:
            found += _group_of(os.path.join(entry or ".", meta, "entry_points.txt"), group)
    return found


def _group_of(path: str, group: str) -> list[tuple[str, str]]:
    """The entries of one `[group]` section of an entry_points.txt (an INI file)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    found, inside = [], False
    if f"[{group}]" not in text:
        return found
    for line in map(str.strip, text.splitlines()):
        if line.startswith("["):
            inside = line == f"[{group}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, value = (part.strip() for part in line.split("=", 1))
            found.append((name, value.split("[", 1)[0].strip()))  # without [extras]
    return found


def _load(value: str):
    module, _, attr = value.partition(":")
    plugin = importlib.import_module(module.strip())
    for part in filter(None, attr.strip().split(".")):
        plugin = getattr(plugin, part)
    return plugin


def _distribution_versions(group: str) -> dict[str, tuple[str, str]]:
    """Entry-point name → (its value, the version of the distribution that provides it); first wins."""
    from importlib.metadata import distributions  # slow to import: only `syncd plugins` asks

    versions: dict[str, tuple[str, str]] = {}
    for dist in distributions():
        for ep in dist.entry_points.select(group=group):
            versions.setdefault(ep.name, (ep.value, dist.version))
    return versions


class PluginInfo(NamedTuple):
    """One loaded plugin, as `syncd plugins` lists it."""

    name: str
    version: str | None  # of the distribution that provides it; None when registered by hand
    schemes: tuple[str, ...]  # the target URL schemes it handles
    kinds: tuple[tuple[str, str], ...] = ()  # the source kinds it provides: (kind, summary)

    def to_dict(self) -> dict:
        shown = {"name": self.name, "version": self.version, "schemes": list(self.schemes)}
        if self.kinds:
            shown["kinds"] = [{"kind": kind, "summary": summary} for kind, summary in self.kinds]
        return shown


def plugin_info(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """What is loaded: each plugin's name, its distribution's version, the URL schemes it handles
    and the source kinds it provides."""
    # Plugins pluggy loaded itself (syncd.testing's) carry their distribution; syncd's own loader's don't.
    versions = {id(plugin): dist.version for plugin, dist in pm.list_plugin_distinfo()}
    for name, (value, version) in _distribution_versions(PROJECT).items():
        plugin = pm.get_plugin(name)
        if plugin is not None and id(plugin) not in versions and _load(value) is plugin:
            versions[id(plugin)] = version  # not one registered by hand under that name
    backends = {id(impl.plugin): impl.function() for impl in pm.hook.register_backends.get_hookimpls()}
    kinds = {id(impl.plugin): impl.function() for impl in pm.hook.register_sources.get_hookimpls()}
    found = []
    for name, plugin in pm.list_name_plugin():
        schemes = tuple(s for cls in backends.get(id(plugin), []) for s in cls.schemes)
        provided = tuple((cls.kind, cls.summary) for cls in kinds.get(id(plugin), []))
        found.append(PluginInfo(name, versions.get(id(plugin)), schemes, provided))
    return sorted(found, key=lambda info: info.name)


def backend_classes(pm: pluggy.PluginManager) -> dict[str, type[Backend]]:
    """Backend classes by URL scheme."""
    return {scheme: cls for classes in pm.hook.register_backends() for cls in classes for scheme in cls.schemes}


def app_profiles(pm: pluggy.PluginManager) -> list[type[AppProfile]]:
    """Every app profile the loaded plugins provide, in plugin registration order."""
    return [cls for classes in reversed(pm.hook.register_apps()) for cls in classes]


def profile_for(pm: pluggy.PluginManager, db) -> type[AppProfile] | None:
    """The first profile that recognises `db`'s schema, or None (the generic table view then)."""
    for cls in app_profiles(pm):
        if cls.recognises(db):
            return cls
    return None


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


def source_kinds(pm: pluggy.PluginManager) -> list[type[SourceKind]]:
    """Every source kind, in the order they are asked to recognise a path."""
    kinds = {cls.kind: cls for classes in reversed(pm.hook.register_sources()) for cls in classes}
    return sorted(kinds.values(), key=lambda cls: (cls.priority, cls.kind))


def open_source(pm: pluggy.PluginManager, path: Path, options: SourceOptions, workdir: Callable[[str], Path],
                kind: str | None = None) -> SourceKind:
    """The source at `path`, opened by the kind named, or else by the first that recognises it.

    `workdir(kind)` gives the private folder the kind may decrypt into. A file no kind
    recognises goes to the plain `sqlite` kind, whose reading says what is wrong with it.
    """
    path = Path(path).expanduser()
    kinds = source_kinds(pm)
    by_name = {cls.kind: cls for cls in kinds}
    if kind is not None:
        if kind not in by_name:
            raise UsageError(f"no source kind is named {kind!r}",
                             hint=f"kinds installed: {', '.join(by_name) or 'none'} (`syncd plugins` lists them)")
        chosen = by_name[kind]
    else:
        chosen = next((cls for cls in kinds if recognised_by(cls, path)), None)
        if chosen is None and path.is_dir():
            raise SourceError(f"{path} is not a file, nor a folder any source kind recognises",
                              hint="give a database file, or an iOS backup folder (the one holding Manifest.db)")
        chosen = chosen or by_name.get("sqlite")
        if chosen is None:
            raise SourceError(f"no installed source kind reads {path}", hint="`syncd plugins` lists the kinds installed")
    return chosen(path, options, workdir(chosen.kind))


def recognised_by(cls: type[SourceKind], path: Path) -> bool:
    """Asked of every kind in turn: one that fails while looking is taken not to recognise the path."""
    try:
        return bool(cls.recognises(path))
    except Exception:  # a plugin's own bug must not hide the others' kinds
        import logging

        logging.getLogger(__name__).debug("%s: recognising %s failed", cls.kind, path, exc_info=True)
        return False


def write_back_for(pm: pluggy.PluginManager, options: SourceOptions) -> Callable[[Path, Path, Mapping[str, str]], None]:
    """What writes a restored database back as its app keeps it, with the key in `options`: the
    `write_back` of the source kind its archive's origin names (for `syncd restore --key-file`)."""
    def write_back(plain: Path, out: Path, origin: Mapping[str, str]) -> None:
        kind = origin.get("kind")
        cls = {cls.kind: cls for cls in source_kinds(pm)}.get(kind)
        if cls is None or not hasattr(cls, "write_back"):
            came = f"a {kind!r} source" if kind else "a plain database"
            raise UsageError(f"this archive came from {came}: there is no app encryption to write it back with",
                             hint="restore without --key-file to get the plain database")
        cls.write_back(plain, out, origin, options)
    return write_back
