"""The package layers import only downward, and no module imports itself in a cycle.

Every ``import`` of the project's own modules is read from the source (AST), at module level and
inside functions alike: a function-level import is still a dependency, it only hides it from
import-time cycle errors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("trainables", "orchestrator", "search_spaces", "deploy")

# Lowest first. A module may import modules of its own layer or of any layer below it.
LAYERS = [
    ("trainables.core",),
    ("trainables.data",),
    ("trainables.models",),
    ("trainables.methods",),
    ("trainables.training",),
    ("trainables.pretrain",),
    ("trainables.worker",),
    ("orchestrator.store", "orchestrator.version", "orchestrator.wording"),
    ("search_spaces",),
    ("orchestrator.sweep", "orchestrator.analysis"),
    ("orchestrator.api",),
    ("orchestrator.bench",),
    ("orchestrator.cli",),
    ("deploy", "orchestrator.__main__"),
]
# Layers that share a rank but must not import each other.
SIBLINGS = {("orchestrator.sweep", "orchestrator.analysis"), ("orchestrator.analysis", "orchestrator.sweep")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            modules[module_name(path)] = path
    return modules


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (``from a.b import c`` counts ``a.b.c`` where
    that is a module, else ``a.b``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        out.update(name for name in names if name.split(".")[0] in PACKAGES)
    return out


def layer_of(module: str) -> tuple[int, str]:
    for rank, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                return rank, name
    if module == "orchestrator":  # the package's __init__: `import orchestrator as roft` reaches everything
        return len(LAYERS) - 1, "orchestrator"
    if module == "trainables":
        return 0, "trainables.core"
    raise AssertionError(f"module {module} belongs to no layer: add it to LAYERS in {__file__}")


def edges() -> list[tuple[str, str]]:
    modules = project_modules()
    known = set(modules)
    return sorted((source, target) for source, path in modules.items()
                  for target in imported_modules(path, known) if target != source)


def test_every_module_has_a_layer():
    for module in project_modules():
        layer_of(module)


def test_imports_point_downward():
    upward = []
    for source, target in edges():
        (source_rank, source_layer), (target_rank, target_layer) = layer_of(source), layer_of(target)
        if target_rank > source_rank or (source_layer, target_layer) in SIBLINGS:
            upward.append(f"{source} -> {target} ({source_layer} may not import {target_layer})")
    assert not upward, "imports that point upward or sideways:\n" + "\n".join(upward)


def test_trainables_never_import_the_orchestrator():
    offending = [(s, t) for s, t in edges() if s.startswith("trainables") and t.startswith("orchestrator")]
    assert not offending


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for source, target in edges():
        graph.setdefault(source, set()).add(target)
    # Tarjan's strongly connected components; a component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("source, target", [("trainables.data.dataset", "orchestrator.store.results"),
                                            ("trainables.models.gnn", "trainables.training.trainer")])
def test_the_rule_catches_an_upward_import(source, target):
    (source_rank, _), (target_rank, _) = layer_of(source), layer_of(target)
    assert target_rank > source_rank
