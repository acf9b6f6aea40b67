"""The one owner on the host of the in-image suite's command line, `python -m torchsmoke ...`
(smoke, multi-node and k8s build it here), and of reading the report a node prints.

The options are torchsmoke's own (src/torchsmoke/cli.py parses them once, in the image).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

MODULE = "torchsmoke"
REPORT_SCHEMA = "torchsmoke/report/v1"  # torchsmoke.report.SCHEMA, what the JSON report says


def suite_command(
    expectations: Sequence[str] = (),
    *,
    launcher: Sequence[str] = ("python",),
    only: str | None = None,
    require_gpu: bool = False,
    quick: bool = False,
    json_to: str | None = None,
    junit_to: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """`<launcher> -m torchsmoke`, then --only, the target's expectations, --require-gpu, --quick,
    --json (a path, or - for stdout), --junit, and last the user's own arguments."""
    argv = [*launcher, "-m", MODULE]
    if only:
        argv += ["--only", only]
    argv += expectations
    if require_gpu:
        argv.append("--require-gpu")
    if quick:
        argv.append("--quick")
    if json_to is not None:
        argv += ["--json", json_to]
    if junit_to is not None:
        argv += ["--junit", junit_to]
    return [*argv, *extra]


def report_of(line: str) -> dict[str, Any] | None:
    """The suite's JSON report when `line` is one (`--json -` prints it on one line), else None."""
    if not line.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and data.get("schema") == REPORT_SCHEMA else None
