"""torchsmoke runs in every image: it may import only the standard library and torch's family
(and torchbuild, the stdlib-only helpers the images carry beside it); torchbuild only the
standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import torchbuild
import torchsmoke

STDLIB = set(sys.stdlib_module_names)
ALLOWED = STDLIB | {"torch", "torchvision", "torchaudio", "torchsmoke", "torchbuild"}
PACKAGE = Path(torchsmoke.__file__).parent
BUILD_PACKAGE = Path(torchbuild.__file__).parent


def imported_roots(source: str) -> set[str]:
    """Top-level names of every absolute import in the source (function bodies included)."""
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_scanner_sees_nested_and_from_imports():
    source = "import os.path\nfrom numpy import x\ndef f():\n    import yaml\nfrom . import y\n"
    assert imported_roots(source) == {"os", "numpy", "yaml"}


def test_torchsmoke_imports_only_stdlib_and_torch():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) >= 10, f"expected the whole package under {PACKAGE}"
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(extra)
        for path in modules
        if (extra := imported_roots(path.read_text()) - ALLOWED)
    }
    assert offenders == {}


def test_torchbuild_imports_only_the_standard_library():
    offenders = {
        path.name: sorted(extra)
        for path in sorted(BUILD_PACKAGE.glob("*.py"))
        if (extra := imported_roots(path.read_text()) - STDLIB - {"torchbuild"})
    }
    assert offenders == {}  # torchenv neither: the host kit depends on torchbuild, not the reverse
