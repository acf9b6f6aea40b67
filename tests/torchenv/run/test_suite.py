from __future__ import annotations

import json

from torchenv.run import suite


def test_suite_command_puts_options_in_one_order_and_the_users_last():
    argv = suite.suite_command(
        ["--expect-cuda", "13.0"], only="env", require_gpu=True, quick=True, json_to="-",
        junit_to="r.xml", extra=["--only", "ddp"],
    )  # fmt: skip
    assert argv == [
        "python", "-m", "torchsmoke", "--only", "env", "--expect-cuda", "13.0", "--require-gpu",
        "--quick", "--json", "-", "--junit", "r.xml", "--only", "ddp",
    ]  # fmt: skip


def test_suite_command_takes_a_launcher_and_adds_nothing_unasked():
    assert suite.suite_command(launcher=["torchrun", "--nnodes=2"]) == [
        "torchrun", "--nnodes=2", "-m", "torchsmoke",
    ]  # fmt: skip


def test_report_of_reads_the_report_as_json_whatever_its_key_order():
    report = {"checks": [], "schema": suite.REPORT_SCHEMA}
    assert suite.report_of(json.dumps(report, indent=None)) == report
    assert suite.report_of(json.dumps({"schema": "other"})) is None
    assert suite.report_of('{"schema": "torchsmoke/report/v1"') is None  # cut short
    assert suite.report_of("[rank0] ok") is None
    assert suite.report_of("[1, 2]") is None
