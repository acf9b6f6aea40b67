"""The env check: it passes with the environment report's headline figures as details."""

from __future__ import annotations

from torchsmoke.checks.env import env
from torchsmoke.core import run_check


def test_env_passes_with_the_reports_headline_figures(real_env, context):
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
    }
