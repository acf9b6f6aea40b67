"""Wall time of the distributed check: one container (ddp's 2 local processes) against
`invoke smoke --nodes N --nproc-per-node P` (N containers, torchrun, c10d rendezvous).

    flock /tmp/torchenv-engine.lock python benchmarks/multinode_speed.py [--target cuda13]
        [--nodes 2] [--nproc-per-node 2] [--repeat 1]

Both run the image as built (run `invoke build` first) through invoke, from the command's start
to its end: container start, torch's import in every rank, rendezvous and training all count.
The ddp check's own duration comes from each JSON report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], report: Path) -> tuple[float, float]:
    """(wall seconds of the invoke command, the ddp check's seconds from its report)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
    return wall, checks["ddp"]["duration_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cuda13")
    parser.add_argument("--nodes", default="2")
    parser.add_argument("--nproc-per-node", default="2")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            single = ["smoke", "--target", args.target, "--reports", tmp,
                      "--args", "--only env,expect,ddp"]  # fmt: skip
            rows.append(
                ("1 container, 2 processes", *timed(single, Path(tmp, f"smoke-{args.target}.json")))
            )
            multi = ["smoke", "--target", args.target, "--nodes", args.nodes,
                     "--nproc-per-node", args.nproc_per_node, "--reports", tmp]  # fmt: skip
            label = f"{args.nodes} containers x {args.nproc_per_node} processes"
            report = Path(tmp, f"smoke-{args.target}-multinode.json")
            rows.append((label, *timed(multi, report)))
    print(f"{'run':<32} {'wall s':>7} {'ddp check s':>12}")
    for label, wall, ddp in rows:
        print(f"{label:<32} {wall:7.1f} {ddp:12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
