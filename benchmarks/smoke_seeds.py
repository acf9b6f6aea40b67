"""Do the smoke thresholds hold on every seed? Runs the training checks over many seeds.

    python benchmarks/smoke_seeds.py [--seeds 25] [--device cpu] [--checks mlp,cnn,amp,...]

For each check and budget (full, --quick) it prints the worst, mean and best score against the
threshold, and how many seeds failed. Scores: held-out accuracy (mlp, cnn; higher is better),
loss ratio last/first (amp; lower is better), int8 accuracy drop from fp32 (quantize), max error
against eager (export) and on the CPU (checkpoint), seconds until `tensorboard --logdir` serves
(tensorboard; all lower is better), pass/fail (determinism, ddp, dataloader).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from torchsmoke.checks import load  # noqa: E402
from torchsmoke.checks.checkpoint import CROSS_DEVICE_ATOL  # noqa: E402
from torchsmoke.checks.tensorboard import SERVE_TIMEOUT_S  # noqa: E402
from torchsmoke.core import Context, Options, Result, run_check  # noqa: E402
from torchsmoke.suite import configure_threads  # noqa: E402


def accuracy(result: Result) -> tuple[float, float]:
    return result.details["accuracy"], result.details["threshold"]


def accuracy_drop(result: Result) -> tuple[float, float]:
    d = result.details
    return d["accuracy_fp32"] - d["accuracy_int8"], d["max_accuracy_drop"]


def export_error(result: Result) -> tuple[float, float]:
    d = result.details
    return max(d["mlp"]["max_error"], d["cnn"]["max_error"]), d["atol"]


def checkpoint_error(result: Result) -> tuple[float, float]:
    return result.details["cpu_max_error"], CROSS_DEVICE_ATOL


def tensorboard_ready(result: Result) -> tuple[float, float]:
    return result.details["served"]["ready_s"], SERVE_TIMEOUT_S


def worst_amp_ratio(result: Result) -> tuple[float, float]:
    runs = result.details["runs"]
    return max(r["loss_ratio"] for r in runs), runs[0]["max_loss_ratio"]


# name -> (score extractor or None for pass/fail only, higher score is better)
SCORES: dict[str, tuple[Callable[[Result], tuple[float, float]] | None, bool]] = {
    "mlp": (accuracy, True),
    "cnn": (accuracy, True),
    "amp": (worst_amp_ratio, False),
    "determinism": (None, True),
    "ddp": (None, True),
    "dataloader": (None, True),
    "quantize": (accuracy_drop, False),
    "export": (export_error, False),
    "checkpoint": (checkpoint_error, False),
    "tensorboard": (tensorboard_ready, False),
}


def sweep(name: str, seeds: int, quick: bool, device: str) -> str:
    extract, higher_is_better = SCORES[name]
    scores, failures, threshold = [], [], None
    start = time.perf_counter()
    for seed in range(seeds):
        result = run_check(load(name), Context(Options(device=device, quick=quick, seed=seed)))
        if result.status != "pass":
            failures.append(f"seed {seed}: {result.reason}")
        if extract is not None and "traceback" not in result.details:
            score, threshold = extract(result)
            scores.append(score)
    per_run = (time.perf_counter() - start) / seeds
    mode = "quick" if quick else "full"
    line = f"{name:<12} {mode:<5} {per_run:6.2f}s/run  fails {len(failures)}/{seeds}"
    if scores:
        worst = min(scores) if higher_is_better else max(scores)
        rel = ">=" if higher_is_better else "<="
        margin = worst - threshold if higher_is_better else threshold - worst
        line += (
            f"  worst {worst:.4g} mean {statistics.mean(scores):.4g} "
            f"(threshold {rel} {threshold}, margin {margin:.4g})"
        )
    return "\n".join([line, *(f"    {f}" for f in failures)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=25, help="seeds 0..N-1 (default: 25)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--checks", default=",".join(SCORES), help="comma-separated")
    args = parser.parse_args()
    names = [n for n in args.checks.split(",") if n]
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        parser.error(f"no seed sweep for {', '.join(unknown)}; choose from {', '.join(SCORES)}")
    print(f"{args.seeds} seeds, device {args.device}, {configure_threads()} threads")
    failed = False
    for name in names:
        for quick in (False, True):
            line = sweep(name, args.seeds, quick, args.device)
            failed |= "fails 0/" not in line
            print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
