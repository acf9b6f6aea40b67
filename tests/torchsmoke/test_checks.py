"""The one table of checks (torchsmoke/checks/__init__.py): every check module defines exactly
the checks of its rows, each named in the table and with the table's summary; a module is
imported only when its check runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from torchsmoke import checks
from torchsmoke.checks import ALL, NAMES

CHECKS = Path(checks.__file__).parent


def test_the_table_names_each_check_once_in_run_order():
    assert len(set(NAMES)) == len(NAMES) == len(ALL)
    assert NAMES[:3] == ("env", "expect", "mlp") and NAMES[-1] == "tensorboard"
    assert checks.entry("compile").module == "torchsmoke.checks.compile"
    with pytest.raises(LookupError, match="no check 'bogus' in the table"):
        checks.entry("bogus")


def test_every_module_under_checks_holds_exactly_its_rows():
    pytest.importorskip("torch", reason="importing the check modules needs torch")
    modules = sorted(f"torchsmoke.checks.{p.stem}" for p in CHECKS.glob("*.py"))
    modules.remove("torchsmoke.checks.__init__")
    assert sorted({e.module for e in ALL}) == modules  # no module without a row, nor the reverse
    for name in modules:
        defined = checks.defined_in(importlib.import_module(name))
        rows = [(e.name, e.summary) for e in ALL if e.module == name]
        assert sorted((c.name, c.summary) for c in defined) == sorted(rows), name


def test_the_table_is_the_imported_suite():
    pytest.importorskip("torch", reason="comparing with the imported checks needs torch")
    assert [(c.name, c.summary) for c in map(checks.load, NAMES)] == [
        (e.name, e.summary) for e in ALL
    ]


def test_a_deferred_check_imports_its_module_only_when_it_runs():
    """In a fresh interpreter: nothing of the checks' modules is loaded until a check runs."""
    pytest.importorskip("torch", reason="running a check needs torch")
    code = (
        "import sys\n"
        "from torchsmoke import checks\n"
        "from torchsmoke.core import Context, run_check\n"
        "chk = checks.deferred('autograd')\n"
        "print('torchsmoke.checks.autograd' in sys.modules)\n"
        "print(run_check(chk, Context()).status)\n"
        "print('torchsmoke.checks.autograd' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120,
        env={"PYTHONPATH": str(CHECKS.parents[1]), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.stdout.split() == ["False", "pass", "True"], done.stderr


def test_a_check_module_that_does_not_import_fails_only_its_check(monkeypatch):
    pytest.importorskip("torch", reason="running a check needs torch")
    from torchsmoke.core import Context, run_check

    broken = checks.Entry("autograd", "torchsmoke.checks.not_there", "a module that is missing")
    monkeypatch.setattr(checks, "ALL", (broken, *ALL[1:]))
    result = run_check(checks.deferred("autograd"), Context())
    assert result.status == "fail"
    assert result.reason == "ModuleNotFoundError: No module named 'torchsmoke.checks.not_there'"
