"""The smoke suite's JSON report as Markdown, for a CI job summary.

`python -m torchenv.run.report reports/smoke-cuda13.json >> "$GITHUB_STEP_SUMMARY"`

The report is what `python -m torchsmoke --json PATH` writes (schema "torchsmoke/report/v1").
Every key may be missing: an older or partial report still renders, with "n/a" in its place.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from torchenv.errors import UserError

NA = "n/a"
_FILE_TARGET = re.compile(r"^smoke-(?P<target>.+)\.json$")
_WORDS = (("pass", "passed"), ("fail", "failed"), ("skip", "skipped"))


def _get(mapping: object, *keys: str) -> object:
    """mapping[k1][k2]... or None where any level is missing or not a dict."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _cell(value: object) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    if value is None or value == "":
        return ""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|")


def _duration(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.2f} s"
    return NA


def _shm(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value / 2**20:.0f} MiB"
    return NA


def _gpus(env: dict[str, Any]) -> str:
    gpus = env.get("gpus")
    if gpus is None:
        return NA
    if not gpus:
        return "none"
    names = [g.get("name", "?") if isinstance(g, dict) else str(g) for g in gpus]
    return ", ".join(names)


def header(report: dict[str, Any], target: str | None = None) -> str:
    """One line: target, torch version and variant, CUDA, Python, GPUs, shared memory."""
    found = report.get("env")
    env: dict[str, Any] = found if isinstance(found, dict) else {}
    recorded = _get(env, "target")
    target = target or (str(recorded) if recorded else None)
    torch_version = _get(env, "torch", "version") or NA
    variant = _get(env, "torch", "variant") or NA
    cuda = _get(env, "torch", "cuda") or "none"
    python = _get(env, "python", "version") or NA
    parts = [
        f"target **{_cell(target or NA)}**",
        f"torch {_cell(torch_version)}",
        f"variant {_cell(variant)}",
        f"CUDA {_cell(cuda)}",
        f"Python {_cell(python)}",
        f"GPUs: {_cell(_gpus(env))}",
        f"/dev/shm {_shm(env.get('shm_bytes'))}",
    ]
    return ", ".join(parts)


def summary_line(report: dict[str, Any]) -> str:
    found = report.get("summary")
    summary: dict[str, Any] | None = found if isinstance(found, dict) else None
    checks = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    if summary is None:
        summary = {s: sum(c.get("status") == s for c in checks) for s in ("pass", "fail", "skip")}
    counts = ", ".join(f"{summary.get(s, 0)} {word}" for s, word in _WORDS)
    total = summary.get("duration_s")
    return counts + (f" in {_duration(total)}" if total is not None else "")


def to_markdown(report: dict[str, Any], target: str | None = None) -> str:
    """The report as Markdown: a header line, a summary line and a table of the checks."""
    lines = [
        f"### Smoke suite: {_cell(target or _get(report, 'env', 'target') or 'report')}",
        "",
        header(report, target),
        "",
        summary_line(report),
        "",
        "| check | status | duration | reason |",
        "| --- | --- | --- | --- |",
    ]
    for check in report.get("checks") or []:
        if not isinstance(check, dict):
            continue
        status = _cell(check.get("status")) or NA
        if status == "fail":
            status = "**fail**"
        lines.append(
            f"| {_cell(check.get('name')) or NA} | {status} "
            f"| {_duration(check.get('duration_s'))} | {_cell(check.get('reason'))} |"
        )
    return "\n".join(lines) + "\n"


def missing(path: Path, target: str | None = None) -> str:
    """The note for a job summary when there is no report (the build or the run failed early)."""
    return (
        f"### Smoke suite: {_cell(target or path.name)}\n\n"
        f"No smoke report ({_cell(path)}): the image did not build, or the suite did not start. "
        "See the job log.\n"
    )


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read the smoke report {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not JSON ({exc}); was the smoke run cut short?") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a smoke report: expected a JSON object")
    return data


def target_from_path(path: Path) -> str | None:
    """'cuda13' for reports/smoke-cuda13.json (the name the nox image session gives it)."""
    match = _FILE_TARGET.match(path.name)
    return match["target"] if match else None


def main(argv: list[str] | None = None) -> int:
    """Print smoke reports (torchsmoke --json files) as Markdown, e.g. for a CI job summary."""
    parser = argparse.ArgumentParser(prog="python -m torchenv.run.report", description=main.__doc__)
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT", help="JSON report")
    parser.add_argument(
        "--target", help="target name for the header (default: from smoke-<target>.json)"
    )
    parser.add_argument(
        "--missing-ok",
        action="store_true",
        help="a missing report prints a note instead of failing (default: fail)",
    )
    args = parser.parse_args(argv)
    texts = []
    for path in args.reports:
        target = args.target or target_from_path(path)
        if args.missing_ok and not path.exists():
            texts.append(missing(path, target))
            continue
        try:
            texts.append(to_markdown(load(path), target))
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print("\n".join(texts), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
