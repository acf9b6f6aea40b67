"""The export check: exported programs equal eager after save and load, or the check fails."""

from __future__ import annotations

import torch

from torchsmoke.checks import export
from torchsmoke.core import run_check


def test_exported_programs_equal_eager_after_save_and_load(real_env, context):
    result = run_check(export.export, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    for name in ("mlp", "cnn"):
        d = result.details[name]
        assert d["max_error"] <= 1e-4 and d["file_bytes"] > 0 and d["batch_sizes"] == [64, 7]


def test_an_exported_program_that_differs_from_eager_fails(real_env, monkeypatch, context):
    real_load = torch.export.load

    class Drifted:
        def __init__(self, program):
            self.program = program

        def module(self):
            inner = self.program.module()
            return lambda x: inner(x) + 1e-2

    monkeypatch.setattr(torch.export, "load", lambda path: Drifted(real_load(path)))
    result = run_check(export.export, context(real_env, device="cpu", quick=True))
    assert result.status == "fail"
    assert result.reason.startswith("exported mlp differs from eager on a batch of 64")
