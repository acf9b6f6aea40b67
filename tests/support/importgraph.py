"""The import graph of a package under src/, as the layout tests read it: every import at any
depth (inside functions too), only those under `if TYPE_CHECKING:` aside.

`from P import name` depends on the submodule P.name where there is one, else on P itself; an
import of a package's submodule does not count as importing the package (Python runs a
package's `__init__` first, which re-exports from its submodules without a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST) -> list[ast.AST]:
    """ast.walk's nodes, less the bodies of `if TYPE_CHECKING:` blocks (their `else:` stays)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return found


def imports(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` imports, at any depth."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                stem = ".".join([*base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            for alias in node.names:
                sub = f"{stem}.{alias.name}"
                found.add(sub if sub in known else stem)
    return {m for m in found if m in known and m != name}


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """{module: the modules of the same top-level package it imports}, for src/<package>."""
    paths = sorted((src / package).rglob("*.py"))
    known = {module_name(p, src) for p in paths}
    return {
        module_name(p, src): imports(
            p.read_text(), module_name(p, src), p.name == "__init__.py", known
        )
        for p in paths
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None (depth-first search, in sorted order)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if cycle := visit(nxt):
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None
