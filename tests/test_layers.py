"""Imports point one way: no module imports from a layer above its own (the map is in syncd/__init__.py).

Every module of syncd and of the built-in plugins is parsed with `ast`, so an
import inside a function counts as much as one at the top. Imports under
`if TYPE_CHECKING:` are exempt: they never run, and name a type only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. A module may import from its own unit and from any unit in a
# lower layer; units of the same layer are peers and don't import each other,
# except in the ground, whose modules every layer (and each other) may use.
LAYERS = [
    # the ground and the public plugin API (syncd.backend, .source, .app, .errors, .plugins)
    {"syncd", "syncd.errors", "syncd.fsutil", "syncd.log", "syncd.redact", "syncd.backend", "syncd.source", "syncd.app",
     "syncd.plugins", "syncd.samples"},
    {"syncd.sqlite"},
    {"syncd.capture"},
    {"syncd.mirror"},
    {"syncd.archive", "syncd.media"},  # the database's format; the media store beside it
    {"syncd.delivery", "syncd.readback"},
    {"syncd.sync", "syncd.discover", "syncd.reading"},  # one pass; finding sources; reading a version
    {"syncd.daemon", "syncd.browse"},  # the long-running skins: the daemon; the read-only web view
    {"syncd.demo", "syncd.testing"},  # the guided demo; the plugin authors' kit
    {"syncd.cli"},
    {"syncd.__main__"},
]
GROUND = 0
LAYER_OF = {unit: n for n, units in enumerate(LAYERS) for unit in units}
PLUGINS = ROOT / "plugins"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PLUGINS if path.is_relative_to(PLUGINS) else ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """`syncd.archive.plain` -> `syncd.archive`; `syncd` -> `syncd`."""
    return ".".join(module.split(".")[:2])


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def type_checking_only(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            ids.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return ids


def syncd_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every syncd module `path` imports at run time."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = type_checking_only(tree)
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from syncd import backend` imports the module syncd.backend
                found.append((node.lineno, f"{module}.{alias.name}" if is_module(f"{module}.{alias.name}") else module))
    return [(line, module) for line, module in found if module.split(".")[0] == "syncd"]


SYNCD_MODULES = sorted(p for p in (ROOT / "syncd").rglob("*.py"))
PLUGIN_MODULES = sorted(PLUGINS.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p)) for p in SYNCD_MODULES}
    assert units == set(LAYER_OF), "put a new package or top-level module in LAYERS (and in syncd/__init__.py's map)"


@pytest.mark.parametrize("path", SYNCD_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_from_above(path):
    unit = unit_of(module_name(path))
    layer = LAYER_OF[unit]
    upward = [f"line {line}: {module} (layer {LAYER_OF[unit_of(module)]}, this is {layer})"
              for line, module in syncd_imports(path)
              if unit_of(module) != unit and LAYER_OF[unit_of(module)] >= layer
              and not (layer == GROUND and LAYER_OF[unit_of(module)] == GROUND)]
    assert not upward, f"{unit} imports from its own layer or above"


@pytest.mark.parametrize("path", PLUGIN_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_the_ground(path):
    """A built-in plugin uses what a third-party one can: the public API and the ground utilities."""
    inner = [f"line {line}: {module}" for line, module in syncd_imports(path) if LAYER_OF[unit_of(module)] != GROUND]
    assert not inner


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The check itself: an import of syncd.sync from the archive is reported."""
    fake = ROOT / "syncd" / "archive" / "upward_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "from ..sync import sync\n")
    (line, module), = syncd_imports(fake)
    assert module == "syncd.sync" and LAYER_OF[unit_of(module)] > LAYER_OF["syncd.archive"]
