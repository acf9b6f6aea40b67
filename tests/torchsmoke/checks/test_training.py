"""The training checks (mlp, cnn, amp, determinism): training that does not learn fails."""

from __future__ import annotations

from torchsmoke.checks import training
from torchsmoke.core import run_check


def test_training_that_does_not_learn_fails(real_env, monkeypatch, context):
    monkeypatch.setattr(training, "fit", lambda model, data, **kw: [2.3] * kw["steps"])
    result = run_check(training.mlp, context(real_env, device="cpu", quick=True))
    assert result.status == "fail"
    assert "held-out accuracy" in result.reason and "training does not learn" in result.reason
