"""The torch family's gate (torchenv.project.torchpins)."""

from __future__ import annotations

from torchenv import matrix
from torchenv.project.declared import Dependencies, Dependency
from torchenv.project.torchpins import torch_conflicts


def deps(*items: tuple[str, str]) -> Dependencies:
    return Dependencies("requirements.txt", tuple(Dependency(r, o) for r, o in items))


def test_a_marker_that_excludes_linux_excludes_the_requirement():
    found = deps(('torch==2.0.0; sys_platform == "win32"', "requirements.txt:1"))
    assert torch_conflicts(found, matrix.get("cuda13")) == []


def test_the_targets_that_accept_it_are_named_and_none_is_said_so():
    targets = matrix.load().values()
    [line] = torch_conflicts(
        deps(("torch==2.11.0", "requirements.txt:2")), matrix.get("cuda13"), targets
    )
    assert line.startswith(
        "requirements.txt:2 requires torch==2.11.0, but target cuda13 pins torch 2.14.1"
    )
    assert "or choose a target whose torch it accepts (cpu, cuda12)" in line
    [line] = torch_conflicts(
        deps(("torch==2.0.0", "requirements.txt:3")), matrix.get("cuda13"), targets
    )
    assert "no target of targets.toml has a torch it accepts" in line
