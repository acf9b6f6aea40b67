"""Do the smoke thresholds hold on every seed? Runs the training checks over many seeds.

    python benchmarks/smoke_seeds.py [--seeds 25] [--device cpu] [--checks mlp,cnn,amp,...]

For each check and budget (full, --quick) it prints the worst, mean and best score against the
threshold, and how many seeds failed. Scores: held-out accuracy (mlp, cnn; higher is better),
loss ratio last/first (amp; lower is better), pass/fail (determinism, ddp, dataloader).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from torchsmoke.checks import BY_NAME  # noqa: E402
from torchsmoke.cli import configure_threads  # noqa: E402
from torchsmoke.core import Context, Options, Result, run_check  # noqa: E402


def accuracy(result: Result) -> tuple[float, float]:
    return result.details["accuracy"], result.details["threshold"]


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
}


def sweep(name: str, seeds: int, quick: bool, device: str) -> str:
    extract, higher_is_better = SCORES[name]
    scores, failures, threshold = [], [], None
    start = time.perf_counter()
    for seed in range(seeds):
        result = run_check(BY_NAME[name], Context(Options(device=device, quick=quick, seed=seed)))
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
            f"  worst {worst:.3f} mean {statistics.mean(scores):.3f} "
            f"(threshold {rel} {threshold}, margin {margin:.3f})"
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
