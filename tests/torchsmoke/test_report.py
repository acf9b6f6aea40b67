"""The run's outputs (torchsmoke.report): result lines, the closing line, the JSON report
(written whole, by rename) and JUnit XML."""

from __future__ import annotations

import json
from pathlib import Path

from torchsmoke import report
from torchsmoke.core import FAIL, PASS, SKIP, Result

RESULTS = [
    Result("env", PASS, None, 0.5, {}),
    Result("cuda", SKIP, "no GPU", 0.01, {}),
    Result("mlp", FAIL, "accuracy 0.1", 2.0, {"traceback": "Traceback ..."}),
    Result("amp", PASS, "a caveat", 1.0, {"dtype": "bf16"}),
]
ENV = {"python": {"version": "3.11.9"}, "torch": {"version": "2.13.0+cpu", "variant": "cpu"}}


def test_a_result_line_has_the_status_name_time_and_reason():
    assert report.result_line(RESULTS[0], 5) == "PASS  env      0.50s"
    assert report.result_line(RESULTS[1], 5) == "SKIP  cuda     0.01s  no GPU"


def test_the_closing_line_has_the_counts_and_names_the_failed_checks():
    assert report.closing_line(RESULTS, 3.54) == (
        "2 passed, 1 failed, 1 skipped in 3.5 s; failed: mlp"
    )
    assert report.closing_line(RESULTS[:2], 0.51) == "1 passed, 0 failed, 1 skipped in 0.5 s"


def test_the_report_has_the_schema_and_counts():
    data = report.build(RESULTS, ENV, ["--only", "env"], 3.5)
    assert data["schema"] == "torchsmoke/report/v1" and data["argv"] == ["--only", "env"]
    assert data["summary"] == {"pass": 2, "fail": 1, "skip": 1, "duration_s": 3.5}
    assert data["checks"][3] == {
        "name": "amp", "status": PASS, "reason": "a caveat", "duration_s": 1.0,
        "details": {"dtype": "bf16"},
    }  # fmt: skip
    assert json.loads(report.one_line(data)) == data and "\n" not in report.one_line(data)


def test_the_json_file_is_replaced_whole(tmp_path: Path):
    path = tmp_path / "out" / "r.json"
    report.write_json({"value": object}, path)  # what JSON cannot hold is written as its text
    assert json.loads(path.read_text()) == {"value": str(object)}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left


def test_junit_has_a_testcase_a_check_with_failures_and_skips(tmp_path: Path):
    path = tmp_path / "r.xml"
    report.write_junit(report.build(RESULTS, ENV, [], 3.5), path)
    suite = report.ET.parse(path).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["mlp"].find("failure").text == "Traceback ..."
    assert cases["cuda"].find("skipped").get("message") == "no GPU"
    assert cases["amp"].find("system-out").text == "a caveat"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"python": "3.11.9", "torch": "2.13.0+cpu", "variant": "cpu"}
