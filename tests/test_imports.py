"""The package import graph, read from the sources with ast: no cycles, and a runtime without
torch or training. Imports inside functions count (they run too); `if TYPE_CHECKING:` ones do not."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Container
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fusion_node", "training")


def _modules() -> dict[str, Path]:
    """Dotted module name -> source file of every module of PACKAGES."""
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, modules: Container[str] = ()) -> set[str]:
    """Every dotted name imported at run time; `from a import b` gives a.b when that is one of
    `modules` (a submodule: the package's own __init__ is then only a parent), else a."""
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in modules else node.module)
        pending.extend(ast.iter_child_nodes(node))
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = _modules()
    return {
        name: _imported(ast.parse(path.read_text()), modules) & modules.keys()
        for name, path in modules.items()
    }


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "training.export" in graph["training.evaluate"]
    assert "fusion_node.pipeline.pair_files" in graph["training.data.datasets"]


def test_no_import_cycles() -> None:
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_the_runtime_imports_neither_torch_nor_training() -> None:
    for path in (REPO / "fusion_node").rglob("*.py"):
        roots = {name.split(".")[0] for name in _imported(ast.parse(path.read_text()))}
        assert not roots & {"torch", "training"}, path
