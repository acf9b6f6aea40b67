"""The checks' names and summaries, read from the source without importing it (no torch needed).

`python -m torchsmoke --list` in a Python without torch still lists the suite: the order is the
`ALL` tuple of torchsmoke/checks/__init__.py and each summary is the second argument of the
check's `@check(name, summary)` decorator. A test keeps this equal to the imported `ALL`.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import cast

CHECKS = Path(__file__).resolve().parent / "checks"


def _decorated(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """{function name: (check name, summary)} of a module's `@check("name", "summary")`s."""
    found: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and isinstance(deco.func, ast.Name)
                and deco.func.id == "check"
                and len(deco.args) == 2
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in deco.args)
            ):
                # the condition above made every argument a str Constant
                name, summary = (cast(ast.Constant, a).value for a in deco.args)
                found[node.name] = (str(name), str(summary))
    return found


def checks(folder: Path = CHECKS) -> list[tuple[str, str]]:
    """(name, summary) of every check, in the order the suite runs them."""
    init = ast.parse((folder / "__init__.py").read_text())
    functions: dict[str, tuple[str, str]] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name != "__init__.py":
            functions.update(_decorated(ast.parse(path.read_text())))
    order: list[str] = []
    for node in init.body:
        target: ast.expr
        value: ast.expr | None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "ALL" and isinstance(value, ast.Tuple):
            order = [e.id for e in value.elts if isinstance(e, ast.Name)]
    return [functions[name] for name in order if name in functions]
