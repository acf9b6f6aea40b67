"""torchsmoke's modules import each other in layers, never in a circle: counting every import at
any depth (inside functions too), only those under `if TYPE_CHECKING:` aside.

Layers, bottom up: options (the command line's grammar and data), checks (the table, what a check
is), envinfo, train, userenv: none imports another torchsmoke module at run time; core (the
runner, over checks, envinfo and options); the check modules and report (over core); rerun;
suite; cli (the entry); __main__.
"""

from __future__ import annotations

import ast
from pathlib import Path

import torchsmoke

PACKAGE = Path(torchsmoke.__file__).parent
ROOT = "torchsmoke"


def module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of the tree (ast.walk's), less the bodies of `if TYPE_CHECKING:` blocks (their
    `else:` branches stay: they run)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return found


def _with_parents(name: str) -> set[str]:
    """Importing a.b.c runs a and a.b first: every package above it is imported too."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The torchsmoke modules (of `known`) that module `name` imports, at any depth, and the
    packages above it."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join([*base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            found.add(stem)
            # `from torchsmoke.checks import ddp` imports the submodule torchsmoke.checks.ddp
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    # a submodule's own packages run before it, as those of every module it imports do
    imported = set().union(*map(_with_parents, found | {name}))
    return {m for m in imported if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {
        module_name(path): imported_modules(
            path.read_text(), module_name(path), path.name == "__init__.py", known
        )
        for path in paths
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None when the graph has none (depth-first search)."""
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


KNOWN = {"torchsmoke", "torchsmoke.a", "torchsmoke.b", "torchsmoke.pkg", "torchsmoke.pkg.sub"}


def test_the_scanner_counts_nested_from_and_relative_imports_but_not_type_checking_ones():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "from torchsmoke import a\n"
        "def f():\n"
        "    from torchsmoke.pkg import sub\n"
        "if TYPE_CHECKING:\n"
        "    from torchsmoke.c import X\n"
        "else:\n"
        "    from . import b\n"
    )
    found = imported_modules(source, "torchsmoke.a", False, KNOWN | {"torchsmoke.c"})
    assert found == {"torchsmoke", "torchsmoke.pkg", "torchsmoke.pkg.sub", "torchsmoke.b"}


def test_the_scanner_resolves_relative_imports_in_a_package():
    found = imported_modules("from .. import a\nfrom . import sub\n", "torchsmoke.pkg", True, KNOWN)
    assert found == {"torchsmoke", "torchsmoke.a", "torchsmoke.pkg.sub"}
    found = imported_modules("from ..b import X\n", "torchsmoke.pkg.sub", False, KNOWN)
    assert found == {"torchsmoke", "torchsmoke.b", "torchsmoke.pkg"}  # its package, too


def test_find_cycle_names_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_graph_covers_the_whole_package():
    graph = import_graph()
    assert {"torchsmoke.cli", "torchsmoke.core", "torchsmoke.checks.ddp"} <= set(graph)
    assert "torchsmoke.checks" in graph["torchsmoke.checks.ddp"]  # its package runs first


def test_torchsmoke_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
