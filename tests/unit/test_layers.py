"""The tree's shape, as DESIGN.md draws it: arrows point down, imports sit at the top.

- The domain (actions/) loads neither Flask nor Celery nor tasks/: its effects
  go through ports the wiring registers.
- broadcast/ is the low layer: it imports nothing above it.
- No import cycle among the project's modules.
- At most ten project imports inside functions, each with a comment saying why.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("actions", "api", "broadcast", "models", "providers", "realtime", "tasks", "demo_data")
TOP_MODULES = ("app", "services", "settings", "celeryconfig", "worker", "group_commit", "outages",
               "refusals")


def _project_files() -> list[Path]:
    files = [ROOT / f"{name}.py" for name in TOP_MODULES]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if f.exists()]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(f): f for f in _project_files()}


def _is_project(name: str) -> bool:
    return name.split(".")[0] in PACKAGES + TOP_MODULES


def _resolve(name: str) -> str | None:
    """The project module an import names (`from a.b import c` may name module a.b.c)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """(modules imported at module level, (line, module) imported inside functions)."""
    tree = ast.parse(path.read_text())
    inner_nodes = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(fn)}
    top, inner = [], []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            if not _is_project(name):
                continue
            target = _resolve(name)
            if target is None:
                continue
            (inner.append((node.lineno, target)) if id(node) in inner_nodes else top.append(target))
    return sorted(set(top)), sorted(set(inner))


def test_the_domain_loads_neither_flask_nor_celery_nor_tasks():
    code = (
        "import importlib, pkgutil, sys, actions\n"
        "for m in pkgutil.walk_packages(actions.__path__, 'actions.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'celery', 'kombu', 'flask', 'tasks'}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_broadcast_imports_nothing_above_it():
    above = ("actions", "api", "realtime", "tasks", "services", "app", "worker", "demo_data")
    upward = [(name, target) for name, path in MODULES.items() if name.startswith("broadcast")
              for target in _imports(path)[0] + [t for _, t in _imports(path)[1]]
              if target.split(".")[0] in above]
    assert upward == []


def test_no_import_cycle():
    graph = {name: [t for t in _imports(path)[0] if t != name] for name, path in MODULES.items()}
    # A package's __init__ importing its own modules is how a package is loaded, not a cycle.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_few_imports_inside_functions_each_saying_why():
    inner = [(path, line, target) for path in _project_files() for line, target in _imports(path)[1]]
    assert len(inner) <= 10, inner
    for path, line, target in inner:
        lines = path.read_text().splitlines()
        said = "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
        assert said, f"{path.relative_to(ROOT)}:{line} imports {target} inside a function without a why"
