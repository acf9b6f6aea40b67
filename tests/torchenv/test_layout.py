"""The layout the design rests on: one way to reach Docker and the host's commands, modules small
enough to read, and a test file named after every module of the host kit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from tests.support import REPO as ROOT
from tests.support import importgraph

SRC = ROOT / "src"
KIT = SRC / "torchenv"
ENGINE = KIT / "engine"
RUNNER = KIT / "runner.py"
MAX_LINES = 450
# The in-image suite and the build helpers run in the image, not on the host: their own rules.
HOST_KIT = sorted(KIT.rglob("*.py"))
# Modules without a test file of their own name: none now. The list may only shrink: an entry
# that gets its test file must leave it.
NOT_YET: frozenset[str] = frozenset()


def imported(path: Path) -> set[str]:
    """The top-level names of every module `path` imports (at any depth in its code)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_engine_package_and_the_runner_reach_docker_or_run_commands():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in HOST_KIT
        if path != RUNNER and ENGINE not in path.parents
        for name in sorted(imported(path) & {"docker", "subprocess"})
    ]
    assert offenders == []


def test_the_checker_sees_an_import_at_any_depth(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import docker.errors\n    from subprocess import run\n")
    assert imported(module) == {"docker", "subprocess"}


def test_no_module_is_over_450_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted(SRC.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_host_kit_module_has_a_test_file_of_its_name():
    missing, done = [], []
    for path in HOST_KIT:
        if path.name in ("__init__.py", "__main__.py"):
            continue
        rel = path.relative_to(KIT)
        test = ROOT / "tests" / "torchenv" / rel.parent / f"test_{rel.name}"
        if test.exists() and str(rel) in NOT_YET:
            done.append(str(rel))
        elif not test.exists() and str(rel) not in NOT_YET:
            missing.append(str(test.relative_to(ROOT)))
    assert missing == []
    assert done == [], "these have a test file now: take them out of NOT_YET"


def test_the_graph_counts_imports_in_functions_but_not_type_checking_ones():
    known = {"p", "p.a", "p.b", "p.c", "p.d", "p.pkg", "p.pkg.sub"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from p import a\n"
        "def f():\n"
        "    from p.pkg import sub\n"
        "    import p.d\n"
        "if TYPE_CHECKING:\n"
        "    from p.c import X\n"
        "else:\n"
        "    from .b import Y\n"
    )
    assert importgraph.imports(source, "p.x", False, known) == {"p.a", "p.pkg.sub", "p.d", "p.b"}
    assert importgraph.find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert importgraph.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", ["torchenv", "torchbuild", "torchsmoke"])
def test_no_import_circle_inside_src(package):
    graph = importgraph.import_graph(SRC, package)
    assert len(graph) > 5
    cycle = importgraph.find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_public_surface_exists():
    import importlib

    import torchenv

    for module, names in torchenv.PUBLIC.items():
        found = importlib.import_module(module)
        assert [n for n in names if not hasattr(found, n)] == [], module


def test_the_files_init_writes_import_only_the_public_surface():
    """tasks.py, noxfile.py and the workflow `torchenv init` writes into users' projects."""
    import re

    import torchenv

    templates = KIT / "kit" / "templates"
    used = set()
    for path in templates.iterdir():
        text = path.read_text()
        used |= {
            (m, n.strip())
            for m, names in re.findall(r"from (torchenv[\w.]*) import ([\w, ]+)", text)
            for n in names.split(",")
        }
        used |= {(m, "__main__") for m in re.findall(r"python -m (torchenv[\w.]*)", text)}
    assert used, "the templates import nothing of torchenv: the check would prove nothing"
    allowed = {(m, n) for m, names in torchenv.PUBLIC.items() for n in (*names, "__main__")}
    allowed |= {
        ("torchenv", m.split(".")[1]) for m in torchenv.PUBLIC
    }  # `from torchenv import matrix`
    assert used - allowed == set()
