"""No import cycle between the modules of ``mask_adapter``.

The graph is read from the source with ``ast``: every ``import`` / ``from ... import`` statement counts, at module
level and inside functions or classes (a function-level import only hides a cycle until the function runs). An edge
goes to the imported module itself: ``from .a import b`` points at ``a.b`` when that is a module, else at ``a``.
"""

import ast
from pathlib import Path

import pytest

import mask_adapter

PACKAGE = "mask_adapter"
ROOT = Path(mask_adapter.__file__).resolve().parent


def _module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that ``name`` (defined in ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def target(dotted: str) -> None:
        # the longest prefix that is a module of the package
        parts = dotted.split(".")
        for n in range(len(parts), 0, -1):
            candidate = ".".join(parts[:n])
            if candidate in modules:
                found.add(candidate)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith(PACKAGE):
                continue
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    target(f"{source}.{alias.name}")
                else:
                    target(source)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> modules of the package it imports."""
    files = _module_files()
    return {name: _imports(name, path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of ``graph``, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_graph_reader_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert len(graph) > 50
    assert "mask_adapter.modeling" in graph[PACKAGE]  # ``from . import modeling`` in the package's __init__
    # ``from .. import data, evaluation`` inside build_config (a function-level import)
    assert {"mask_adapter.data", "mask_adapter.evaluation"} <= graph["mask_adapter.config.merge"]
    # ``from .layout import ...`` in a submodule: an edge to the sibling module, not to the package
    assert "mask_adapter.checkpoint.layout" in graph["mask_adapter.checkpoint.loading"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle))
