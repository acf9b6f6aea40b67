"""`python -m`-style entry to the doctor's checks, kept for the test of its exit codes; users run
`invoke doctor`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torchenv import matrix
from torchenv.doctor import checkup as doctor
from torchenv.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="torchenv-doctor", description="torchenv doctor")
    parser.add_argument("--target", action="append", help="check only this target (repeatable)")
    parser.add_argument("--require-gpu", action="store_true", help="fail without a usable GPU")
    args = parser.parse_args(argv)
    try:
        targets = [matrix.get(n) for n in args.target] if args.target else None
        rows = doctor.run_checks(targets=targets, require_gpu=args.require_gpu)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(doctor.render(rows))
    return doctor.exit_code(rows)
