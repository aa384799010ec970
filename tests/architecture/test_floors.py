"""The floors of docs/ARCHITECTURE.md, held against the code: every import (lazy ones too) names the same
folder or a lower floor, Ray is imported only in ray_jobs/, and no modules import each other in a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Highest floor first; a module belongs to the longest prefix that names it.
FLOORS = {
    "ptft.__main__": 8, "ptft.cli": 7, "ray_jobs": 6, "ptft.grid": 5, "ptft.study": 4,
    "trainers": 3, "evals": 3, "ptft.tasks": 2, "ptft.core": 1, "ptft": 1,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str | None:
    matches = [prefix for prefix in FLOORS if module == prefix or module.startswith(prefix + ".")]
    return max(matches, key=len) if matches else None


def _imports(path: Path) -> set[str]:
    """Absolute names this file imports (the package of a relative import is resolved)."""
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _sources() -> dict[str, Path]:
    files = [p for top in ("ptft", "trainers", "evals", "ray_jobs") for p in (REPO / top).rglob("*.py")]
    return {_module(p): p for p in files}


SOURCES = _sources()


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_imports_run_down_the_floors(module):
    room = _room(module)
    for name in _imports(SOURCES[module]):
        target = _room(name)
        if target is None or target == room or name not in SOURCES and not any(
                m.startswith(name + ".") for m in SOURCES):
            continue
        assert FLOORS[target] < FLOORS[room], f"{module} (floor {FLOORS[room]}) imports {name} (floor {FLOORS[target]})"


def test_ray_only_in_ray_jobs():
    offenders = sorted(m for m, path in SOURCES.items() if _room(m) != "ray_jobs"
                       and any(n == "ray" or n.startswith("ray.") for n in _imports(path)))
    assert offenders == []


def test_no_import_loops():
    graph = {m: {n for n in _imports(p) if n in SOURCES and n != m} for m, p in SOURCES.items()}
    # A package's __init__ re-exporting its children is not a loop of logic: leave those edges out.
    graph = {m: {n for n in targets if not n.startswith(m + ".")} for m, targets in graph.items()}
    seen, stack, loops = set(), [], []

    def visit(node: str) -> None:
        if node in stack:
            loops.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for module in sorted(graph):
        visit(module)
    assert loops == []
