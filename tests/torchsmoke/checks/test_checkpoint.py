"""The checkpoint check: a state_dict loads back on the CPU with map_location, or the check fails."""

from __future__ import annotations

import torch

from torchsmoke.checks import checkpoint
from torchsmoke.core import run_check


def test_the_checkpoint_loads_on_the_cpu_with_map_location(real_env, context):
    result = run_check(checkpoint.checkpoint, context(real_env))
    assert result.status == "pass", result.reason
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert result.details["saved_on"] == device
    assert result.details["loaded_on"] == [device, "cpu"]
    assert result.details["cpu_max_error"] <= 1e-4


def test_a_checkpoint_that_loads_differently_on_the_cpu_fails(real_env, monkeypatch, context):
    loads = []
    real_load = torch.load

    def load(path, map_location=None, **kw):
        state = real_load(path, map_location=map_location, **kw)
        loads.append(map_location)
        if len(loads) == 2:  # the CPU load: a weight changed on the way
            state["0.weight"] = state["0.weight"] + 0.5
        return state

    monkeypatch.setattr(checkpoint.torch, "load", load)
    result = run_check(checkpoint.checkpoint, context(real_env, device="cpu"))
    assert loads[1] == torch.device("cpu")
    assert result.status == "fail"
    assert result.reason.startswith("saved on cpu, loaded on the CPU with map_location")
