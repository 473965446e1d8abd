"""The package's modules import each other without cycles, so the layering of the README
(data -> tokenizers -> models -> training -> checkpoint -> predict/explain -> cli/server) holds.

The graph comes from the source (every ``import`` statement, also those under ``TYPE_CHECKING`` or
inside functions), so a cycle that only works because of import order, or only for the type
checker, is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

import classiformer

PACKAGE = Path(classiformer.__file__).parent


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, packages named by their ``__init__.py``."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. ``from pkg import name`` counts as importing
    ``pkg.name`` where that is a module, else ``pkg`` itself."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_the_imports_it_must() -> None:
    graph = import_graph(PACKAGE)
    assert {"classiformer.checkpoint", "classiformer.explain"} <= graph["classiformer.predict"]
    assert "classiformer.tokenizers" in graph["classiformer.explain"]
    assert "classiformer.server.routes" in graph["classiformer.server.routes.explain"]  # from . import Service
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_explain_does_not_depend_on_predict() -> None:
    # explain.py sits beside predict.py, below the CLI and the server: it explains any model with a
    # tokenizer and labels, not only a Classifier (whose explain() method calls it).
    graph = import_graph(PACKAGE)
    assert "classiformer.predict" not in graph["classiformer.explain"]
