"""The layer rules of docs/architecture.md, read from the code's own imports.

Every ``import azmem...`` / ``from azmem... import`` / relative import counts, at module
level, inside functions and under ``TYPE_CHECKING`` alike: a deferred import is still
a dependency, and a circle through one still ties two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "azmem"

#: layer -> the layers it may import (itself always allowed). The ground floor is errors + config.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "azure": {"errors", "config"},
    "emulator": {"errors", "config"},
    "embeddings": {"errors", "config"},
    "stores": {"errors", "config"},
    "memory": {"errors", "config", "azure", "embeddings", "stores"},
    "graph": {"errors", "config", "azure", "embeddings", "stores", "memory"},
    "integrations": {"errors", "config", "azure", "embeddings", "stores", "memory", "graph"},
    "cli": {"errors", "config", "azure", "emulator", "embeddings", "stores", "memory", "graph", "server"},
    "server": {"errors", "config", "azure", "embeddings", "stores", "memory", "graph"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("azmem"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if not mod.startswith("azmem"):
                continue
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from azmem.stores import sqlite`
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else "azmem"


def test_every_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module, deps in _graph().items():
        layer = _layer(module)
        if layer not in ALLOWED:
            continue  # azmem/__init__, __main__
        for dep in deps:
            target = _layer(dep)
            if target != layer and target not in ALLOWED[layer] and dep != "azmem":  # __version__
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_the_ground_floor_imports_no_layer() -> None:
    graph = _graph()
    assert graph["azmem"] == set()  # the package root: metadata only
    assert graph["azmem.errors"] == set()
    assert graph["azmem.config"] <= {"azmem.errors"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            # A package's __init__ re-exporting its own submodules is not a circle between modules.
            if v.startswith(w + ".") and w in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a.x": {"a.y"}, "a.y": {"a.x"}, "a.z": set()}) == [["a.x", "a.y"]]


@pytest.mark.parametrize("layer", ["stores", "embeddings"])
def test_store_and_embedder_never_import_azure(layer: str) -> None:
    graph = _graph()
    offenders = [f"{m} -> {d}" for m in graph if _layer(m) == layer for d in graph[m] if _layer(d) == "azure"]
    assert offenders == []
