"""The run's outputs: the result lines, the closing line, the JSON report and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torchsmoke.core import FAIL, PASS, SKIP, Result

SCHEMA = "torchsmoke/report/v1"
_LABELS = {PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP"}


def result_line(result: Result, name_width: int = 12) -> str:
    """`PASS  mlp           1.23s  reason`: printed as each check finishes."""
    line = f"{_LABELS[result.status]:<4}  {result.name:<{name_width}} {result.duration_s:7.2f}s"
    return f"{line}  {result.reason}" if result.reason else line


def summary(results: list[Result], duration_s: float) -> dict[str, Any]:
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, SKIP)}
    return {**counts, "duration_s": round(duration_s, 3)}


def closing_line(results: list[Result], duration_s: float) -> str:
    """The run's last line: the counts, and the checks that failed by name. Each check's own line
    (result_line, printed as it finished) is above it: the results are printed once."""
    s = summary(results, duration_s)
    line = f"{s[PASS]} passed, {s[FAIL]} failed, {s[SKIP]} skipped in {s['duration_s']:.1f} s"
    failed = [r.name for r in results if r.status == FAIL]
    return f"{line}; failed: {', '.join(failed)}" if failed else line


def build(
    results: list[Result], env: dict[str, Any], argv: list[str], duration_s: float
) -> dict[str, Any]:
    """The versioned JSON report (the shape others rely on; see the package docstring)."""
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "argv": list(argv),
        "env": env,
        "checks": [asdict(r) for r in results],
        "summary": summary(results, duration_s),
    }


def one_line(report: dict[str, Any]) -> str:
    """The JSON report on one line (`--json -`: for a log that a collector reads line by line)."""
    return json.dumps(report, default=str, separators=(",", ":"))


def write_json(report: dict[str, Any], path: Path) -> None:
    """Written whole or not at all (a temporary file renamed), so that a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # default=str: a detail that is not JSON (a dtype, a device) is written as its text.
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    tmp.replace(path)


def junit(report: dict[str, Any]) -> ET.ElementTree:
    """One testcase a check; failure/skipped elements carry the reason."""
    s = report["summary"]
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="torchsmoke",
        tests=str(len(report["checks"])),
        failures=str(s[FAIL]),
        skipped=str(s[SKIP]),
        errors="0",
        time=f"{s['duration_s']:.3f}",
        timestamp=report["created"],
    )
    props = ET.SubElement(suite, "properties")
    env = report["env"] or {}
    for key, value in (
        ("python", (env.get("python") or {}).get("version")),
        ("torch", (env.get("torch") or {}).get("version")),
        ("variant", (env.get("torch") or {}).get("variant")),
    ):
        ET.SubElement(props, "property", name=key, value=str(value))
    for check in report["checks"]:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="torchsmoke",
            name=check["name"],
            time=f"{check['duration_s']:.3f}",
        )
        if check["status"] == FAIL:
            failure = ET.SubElement(case, "failure", message=check["reason"] or "failed")
            failure.text = check["details"].get("traceback") or check["reason"]
        elif check["status"] == SKIP:
            ET.SubElement(case, "skipped", message=check["reason"] or "skipped")
        elif check["reason"]:
            ET.SubElement(case, "system-out").text = check["reason"]
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit(report).write(path, encoding="utf-8", xml_declaration=True)
