"""The tensorboard check: log, read back and serve; skip where it is not installed."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time

import pytest

from torchsmoke.checks import tensorboard
from torchsmoke.core import CheckFailed, run_check

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
needs_tensorboard = pytest.mark.skipif(
    not HAS_TENSORBOARD, reason="tensorboard is not installed here (pip install tensorboard)"
)


@needs_tensorboard
def test_tensorboard_logs_reads_back_and_serves(real_env, context):
    result = run_check(tensorboard.tensorboard, context(real_env))
    assert result.status == "pass", result.reason
    d = result.details
    assert d["steps"] == 150 and d["histograms"] == 8  # every 20th step: 0, 20, ..., 140
    assert {"train/loss", "eval/accuracy"} <= set(d["tags"]["scalars"])
    served = d["served"]
    assert served["runs"] == ["."] and served["stopped"] and served["ready_s"] < 60
    assert served["command"][0].endswith("tensorboard") and "--logdir" in served["command"]


@needs_tensorboard
def test_serving_leaves_nothing_in_the_temporary_folder(real_env, context, tmp_path, monkeypatch):
    host_tmp = tmp_path / "tmp"
    host_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(host_tmp))
    result = run_check(tensorboard.tensorboard, context(real_env))
    assert result.status == "pass", result.reason
    assert list(host_tmp.iterdir()) == []  # no .tensorboard-info of the server's left behind


@needs_tensorboard
def test_tensorboard_in_quick_mode_logs_and_reads_back_without_serving(real_env, context):
    result = run_check(tensorboard.tensorboard, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    assert result.details["steps"] == 60 and result.details["histograms"] == 3  # 0, 20, 40
    assert result.details["served"] == "not tried in --quick mode"


def test_tensorboard_skips_where_it_is_not_installed(real_env, monkeypatch, context):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails
    result = run_check(tensorboard.tensorboard, context(real_env, quick=True))
    assert result.status == "skip"
    assert result.reason == (
        "tensorboard is not installed (the dev flavor has it; pip install tensorboard)"
    )


@needs_tensorboard
def test_a_tensorboard_that_exits_fails_with_its_output(real_env, monkeypatch, context):
    def command(logdir, port):
        return [sys.executable, "-c", "import sys; print('no such flag: --logdir'); sys.exit(2)"]

    monkeypatch.setattr(tensorboard, "tensorboard_command", command)
    result = run_check(tensorboard.tensorboard, context(real_env))  # the full run serves
    assert result.status == "fail"
    assert result.reason == (
        "`tensorboard --logdir` exited with status 2 before serving: no such flag: --logdir"
    )


def test_a_tensorboard_that_never_answers_is_stopped_at_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(
        tensorboard, "tensorboard_command", lambda logdir, port: ["sleep", "60"]
    )  # never listens
    start = time.monotonic()
    with pytest.raises(CheckFailed, match=r"did not serve the run within 2 s \(URLError"):
        tensorboard.serve(tmp_path, timeout_s=2)
    assert time.monotonic() - start < 10  # stopped, not waited for


# --- a UID the image does not know -------------------------------------------------------------
