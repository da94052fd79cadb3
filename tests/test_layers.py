"""The layer order of the architecture is the import order: no module imports upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamflow_data

PACKAGE = Path(streamflow_data.__file__).parent

# Lowest first: a module may import only from its own layer and those before it.
LAYERS = [
    {"location"},
    {"model", "errors", "validation", "config", "checksum", "threads"},
    {"connectors"},
    {"shell"},
    {"mapper", "changes"},
    {"policy"},
    {"contract"},
    {"transfer"},
    {"catalog", "cache"},
    {"manager"},
    {"configfile", "delivery", "api"},
    {"service", "remote"},
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


def _module_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` to the modules of it that it imports (an
    import of a submodule through its package counts as one of the submodule)."""
    package = root.name
    names = {
        ".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in root.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in names:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & names
                found |= submodules or {node.module}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name in names}
        graph[module] = {name for name in found if name.startswith(package)} - {module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph``, if it has one."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


PLUGINS = Path(__file__).parent.parent / "plugins"


@pytest.mark.parametrize(
    "root",
    [PACKAGE, *sorted(PLUGINS.glob("*/streamflow_data_*"))],
    ids=lambda root: root.name,
)
def test_no_two_modules_import_each_other(root: Path) -> None:
    """Imports form no circle, not even one for type checking only."""
    assert _cycle(_module_graph(root)) is None
