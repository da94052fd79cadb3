"""The layer order of the architecture is the import order: no module imports upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamflow_data

PACKAGE = Path(streamflow_data.__file__).parent

# Lowest first: a module may import only from its own layer and those before it.
LAYERS = [
    {"model", "errors", "validation", "config", "checksum"},
    {"connectors"},
    {"mapper"},
    {"policy"},
    {"contract"},
    {"transfer"},
    {"catalog", "cache"},
    {"manager"},
    {"configfile", "delivery"},
    {"cli", "testing", "sdk", "__init__"},
]


def layer_of(top: str) -> int:
    """The layer of the package member ``top`` (``mapper``, ``connectors``, ...)."""
    return next(index for index, names in enumerate(LAYERS) if top in names)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name.split(".")[1] for name in found if name.startswith("streamflow_data.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_higher_layer(path: Path) -> None:
    own = layer_of(path.relative_to(PACKAGE).parts[0].removesuffix(".py"))
    upward = {name for name in imports_of(path) if layer_of(name) > own}
    assert upward == set(), f"{path.name} imports from higher layers"


def test_modules_stay_small() -> None:
    for path in MODULES:
        assert len(path.read_text().splitlines()) <= 600, path
