"""`tensorboard`: log while training, read the log back with TensorBoard, serve it.

A SummaryWriter logs the loss of every step and a histogram of the first layer's weights while
the MLP trains; TensorBoard's own event reader must give the same values back; then
`tensorboard --logdir` must answer over HTTP on the loopback (bounded wait, then stopped; in the
full run only: --quick logs and reads back, and does not start the server).
tensorboard is imported lazily: where it is not installed (the runtime flavor) the check skips.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from torch import nn

from torchsmoke.checks.ddp import free_port
from torchsmoke.checks.training import train_mlp
from torchsmoke.core import CheckFailed, CheckSkipped, Context, Outcome, check, passed, require
from torchsmoke.train import accuracy

LOSS_TAG, WEIGHTS_TAG, ACCURACY_TAG = "train/loss", "weights/fc1", "eval/accuracy"
HISTOGRAM_EVERY = 20  # steps
SERVE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "tensorboard" or exc.name.startswith("tensorboard.")):
            raise CheckSkipped(
                "tensorboard is not installed (the dev flavor has it; pip install tensorboard)"
            ) from None
        raise


def tensorboard_command(logdir: Path, port: int) -> list[str]:
    """`tensorboard --logdir ...` from this Python's environment (its module when no script)."""
    script = Path(sys.executable).parent / "tensorboard"
    program = [str(script)] if script.is_file() else [sys.executable, "-m", "tensorboard.main"]
    return [*program, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]


def _get(url: str, timeout: float) -> bytes:
    # Straight to the loopback: an http_proxy in the environment must not be used.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def serve(logdir: Path, timeout_s: float = SERVE_TIMEOUT_S) -> dict[str, object]:
    """Start `tensorboard --logdir`, wait until it lists the run over HTTP, stop it."""
    port = free_port()
    command = tensorboard_command(logdir, port)
    start = time.monotonic()
    # TensorBoard notes its servers in $TMPDIR/.tensorboard-info: a folder that goes with this run
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory(prefix="tb-") as scratch:
        env = {**os.environ, "TMPDIR": scratch}
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            runs, error = None, "no answer yet"
            while time.monotonic() - start < timeout_s:
                if proc.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
                    raise CheckFailed(
                        f"`tensorboard --logdir` exited with status {proc.returncode} before "
                        f"serving: {' | '.join(tail) or '(no output)'}",
                        command=command,
                    )
                try:
                    runs = json.loads(_get(f"http://127.0.0.1:{port}/data/runs", timeout=5))
                    if runs:
                        break
                    error = "it answers but lists no run yet"
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.25)
            else:
                raise CheckFailed(
                    f"`tensorboard --logdir` did not serve the run within {timeout_s:.0f} s "
                    f"({error})",
                    command=command,
                )
            ready_s = time.monotonic() - start
            index = _get(f"http://127.0.0.1:{port}/", timeout=5)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    require(b"<html" in index.lower(), "TensorBoard's front page is not HTML", command=command)
    return {"command": command, "ready_s": round(ready_s, 2), "runs": runs, "stopped": True}


def _close(a: float, b: float) -> bool:
    """Equal up to float32 rounding (events store float32)."""
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)


def _read_back(ea: ModuleType, logdir: Path) -> Any:  # an EventAccumulator: tensorboard is untyped
    reader = ea.EventAccumulator(
        str(logdir), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0}
    )  # 0: keep every event
    reader.Reload()
    return reader


@check("tensorboard")
def tensorboard(ctx: Context) -> Outcome:
    _import("tensorboard")
    summary = _import("torch.utils.tensorboard")
    ea = _import("tensorboard.backend.event_processing.event_accumulator")
    losses: dict[int, float] = {}
    histograms: dict[int, tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="torchsmoke-tensorboard-") as tmp:
        logdir = Path(tmp)
        writer = summary.SummaryWriter(log_dir=str(logdir))
        try:

            def on_loss(step: int, loss: float, model: nn.Module) -> None:
                writer.add_scalar(LOSS_TAG, loss, step)
                losses[step] = loss
                if step % HISTOGRAM_EVERY == 0:
                    # train_mlp's model is make_mlp's Sequential, a Linear first
                    first = cast(nn.Linear, cast(nn.Sequential, model)[0])
                    weights = first.weight.detach().cpu()
                    writer.add_histogram(WEIGHTS_TAG, weights, step)
                    histograms[step] = (weights.min().item(), weights.max().item(), weights.numel())

            model, data, _ = train_mlp(ctx, ctx.device, on_loss)
            acc = accuracy(model, data.x_test, data.y_test)
            writer.add_scalar(ACCURACY_TAG, acc, len(losses))
        finally:
            writer.close()
        files = sorted(p.name for p in logdir.iterdir())
        require(
            any(f.startswith("events.out.tfevents.") for f in files),
            f"SummaryWriter wrote no event file in its log dir (found {files})",
        )
        reader = _read_back(ea, logdir)
        tags = reader.Tags()
        details = {"event_files": files, "tags": tags, "steps": len(losses)}
        require(
            LOSS_TAG in tags["scalars"] and WEIGHTS_TAG in tags["histograms"],
            f"TensorBoard's reader does not see the logged tags ({tags})",
            **details,
        )
        read = {e.step: e.value for e in reader.Scalars(LOSS_TAG)}
        wrong = [s for s in losses if s not in read or not _close(read[s], losses[s])]
        require(
            set(read) == set(losses) and not wrong,
            f"{len(wrong)} of {len(losses)} logged losses read back differently "
            f"(first: step {wrong[0] if wrong else None})",
            **details,
        )
        hist = {e.step: e.histogram_value for e in reader.Histograms(WEIGHTS_TAG)}
        for step, (low, high, count) in histograms.items():
            value = hist.get(step)
            require(
                value is not None
                and int(value.num) == count
                and _close(value.min, low)
                and _close(value.max, high),
                f"the weights histogram of step {step} reads back as {value}, logged "
                f"min {low:.6g} max {high:.6g} count {count}",
                **details,
            )
        read_acc = reader.Scalars(ACCURACY_TAG)[-1].value
        require(_close(read_acc, acc), f"accuracy reads back as {read_acc}, logged {acc}")
        # Starting `tensorboard --logdir` takes over a second: the full run does it, --quick not.
        details["served"] = "not tried in --quick mode" if ctx.quick else serve(logdir)
    details.update(
        tensorboard=str(getattr(importlib.import_module("tensorboard"), "__version__", "?")),
        histograms=len(histograms),
        accuracy=acc,
        device=str(ctx.device),
    )
    return passed(details)
