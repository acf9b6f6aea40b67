"""The env check: it passes with the environment report's headline figures as details."""

from __future__ import annotations

import pytest

from torchsmoke.checks.env import env, torch_constraint
from torchsmoke.core import CheckFailed, run_check


def test_env_passes_with_the_reports_headline_figures(real_env, context, monkeypatch):
    monkeypatch.delenv("PIP_CONSTRAINT", raising=False)
    result = run_check(env, context(real_env))
    assert (result.status, result.reason) == ("pass", None)
    assert result.details == {
        "python": real_env.python.version,
        "torch": real_env.torch.version,
        "variant": real_env.torch.variant,
        "cuda": real_env.torch.cuda,
        "arch_list": real_env.torch.arch_list,
        "gpus": len(real_env.gpus),
        "shm_bytes": real_env.shm_bytes,
        "torch_constraint": None,
    }


def test_the_constraint_that_keeps_torch_is_reported(tmp_path):
    pins = tmp_path / "torchenv-constraints.txt"
    pins.write_text("# the family\ntorch==2.7.1+cu118\ntorchvision==0.22.1+cu118\n")
    shown = torch_constraint("2.7.1+cu118", {"PIP_CONSTRAINT": str(pins)})
    assert shown == f"torch==2.7.1+cu118 torchvision==0.22.1+cu118 ({pins})"
    assert torch_constraint("2.7.1+cu118", {}) is None
    pins.write_text("torch==2.14.1\n")  # the metadata's version; torch says 2.14.1+cu130
    assert torch_constraint("2.14.1+cu130", {"PIP_CONSTRAINT": str(pins)}).startswith(
        "torch==2.14.1 ("
    )


def test_a_constraint_for_another_torch_fails_the_check(tmp_path):
    pins = tmp_path / "torchenv-constraints.txt"
    pins.write_text("torch==2.11.0\n")
    with pytest.raises(CheckFailed, match="pins torch 2.11.0, but torch 2.10.0 is installed"):
        torch_constraint("2.10.0", {"PIP_CONSTRAINT": str(pins)})
    with pytest.raises(CheckFailed, match="pins torch 2.11.0, but torch 2.11.0.post1 is"):
        torch_constraint("2.11.0.post1", {"PIP_CONSTRAINT": str(pins)})
    with pytest.raises(CheckFailed, match="cannot be read"):
        torch_constraint("2.10.0", {"PIP_CONSTRAINT": str(tmp_path / "missing.txt")})


def test_a_users_own_constraints_need_not_pin_torch_outside_an_image(tmp_path):
    pins = tmp_path / "mine.txt"
    pins.write_text("numpy<2\n")
    assert torch_constraint("2.10.0", {"PIP_CONSTRAINT": str(pins)}) == f"no == pins ({pins})"
    with pytest.raises(CheckFailed, match="pins torch \\(nothing\\)"):
        torch_constraint("2.10.0", {"PIP_CONSTRAINT": str(pins), "TORCHENV_TARGET": "cuda13"})
