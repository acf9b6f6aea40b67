"""How long the smoke suite takes, full and --quick, and which checks take the time.

    python benchmarks/smoke_speed.py [--python PATH | --image IMAGE] [--repeat N]
        [-- extra torchsmoke args]

Each run is a fresh `python -m torchsmoke` process (so torch's import and every cold start
count), with --json to read the per-check durations: on the host's torch (--python), or in a
container of a built image (--image: `docker run --rm --network none --shm-size 2g`, as the image's
user, the container's start and removal counted too). Targets on 2 CPU cores: full <= 45 s,
--quick <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from torchenv import engine  # noqa: E402
from torchenv.run import smoke  # noqa: E402

BUDGET_S = {"full": 45.0, "quick": 10.0}


def run_suite(python: str, mode: str, extra: list[str], image: str | None) -> tuple[float, dict]:
    """(wall seconds of the whole process, the JSON report)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        suite = ["-W", "ignore", "-m", "torchsmoke", "--json", str(path), *extra]
        if mode == "quick":
            suite.append("--quick")
        if image:
            Path(tmp).chmod(0o777)  # the image's user writes the report there
            args = [engine.detect().client, "run", "--rm", "--network", "none",
                    f"--shm-size={smoke.SHM_SIZE}", "--volume", f"{tmp}:{tmp}", image,
                    "python", *suite]  # fmt: skip
        else:
            args = [python, *suite]
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        start = time.perf_counter()
        proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if not path.exists():
            sys.exit(f"{mode} run wrote no report (exit {proc.returncode}):\n{proc.stderr}")
        return wall, json.loads(path.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with torch")
    parser.add_argument("--image", help="run the suite in a container of this image instead")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode (default: 1)")
    parser.add_argument("extra", nargs="*", help="more torchsmoke arguments (after --)")
    args = parser.parse_args()

    runs: dict[str, list[tuple[float, dict]]] = {}
    for mode in ("full", "quick"):
        runs[mode] = [
            run_suite(args.python, mode, args.extra, args.image) for _ in range(args.repeat)
        ]

    print(f"{'mode':<6} {'wall s':>7} {'suite s':>8} {'budget':>7}  result")
    for mode, results in runs.items():
        for wall, report in results:
            s = report["summary"]
            verdict = "ok" if wall <= BUDGET_S[mode] else "OVER BUDGET"
            counts = f"{s['pass']} pass, {s['fail']} fail, {s['skip']} skip"
            print(
                f"{mode:<6} {wall:7.1f} {s['duration_s']:8.1f} {BUDGET_S[mode]:7.0f}  "
                f"{verdict}; {counts}"
            )

    print()
    print(
        f"{'check':<12} {'full s':>7} {'share':>6} {'quick s':>8} {'share':>6}  status (full/quick)"
    )
    last = {mode: results[-1][1] for mode, results in runs.items()}
    by_mode = {mode: {c["name"]: c for c in r["checks"]} for mode, r in last.items()}
    for name in by_mode["full"]:
        cells = []
        for mode in ("full", "quick"):
            check = by_mode[mode].get(name)
            total = last[mode]["summary"]["duration_s"] or 1.0
            if check is None:
                cells.append(f"{'-':>7} {'-':>6}")
            else:
                share = 100 * check["duration_s"] / total
                cells.append(f"{check['duration_s']:7.2f} {share:5.1f}%")
        statuses = "/".join(by_mode[m].get(name, {}).get("status", "-") for m in ("full", "quick"))
        print(f"{name:<12} {cells[0]} {cells[1]:>15}  {statuses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
