"""The suite's run, through its real interface: the full suite once as a subprocess (results,
the closing line, the JSON report and JUnit XML), and single checks in-process."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from torchsmoke import report, suite
from torchsmoke.checks import NAMES
from torchsmoke.cli import main, select
from torchsmoke.options import parse

HAS_GPU = torch.cuda.is_available()


@dataclass
class FullRun:
    proc: subprocess.CompletedProcess
    report: dict
    junit: ET.ElementTree

    def check(self, name: str) -> dict:
        return next(c for c in self.report["checks"] if c["name"] == name)


FULL_RUN_ARGS = ["--json", "out/report.json", "--junit", "out/report.xml"]


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory, run_cli) -> FullRun:
    """The whole suite, once per test session."""
    if not shutil.which("g++"):
        pytest.fail("no g++ on this host: the compile check fails without one (install g++)")
    tmp = tmp_path_factory.mktemp("smoke")
    proc = run_cli(*FULL_RUN_ARGS, cwd=tmp)
    report = json.loads((tmp / "out" / "report.json").read_text())
    return FullRun(proc, report, ET.parse(tmp / "out" / "report.xml"))


def test_every_check_passes_or_skips_for_the_expected_reason(full_run: FullRun):
    assert full_run.proc.returncode == 0, full_run.proc.stdout + full_run.proc.stderr
    statuses = {c["name"]: (c["status"], c["reason"]) for c in full_run.report["checks"]}
    assert list(statuses) == list(NAMES)
    expected_skips = {
        "expect": "nothing expected (no --expect-* option and no --require-gpu given)"
    }
    for name in ("torchvision", "torchaudio"):
        if importlib.util.find_spec(name) is None:
            short = name.removeprefix("torch")
            for check in (short, {"vision": "image_io", "audio": "audio_io"}[short]):
                expected_skips[check] = f"{name} is not installed"
    if not torch.version.cuda:
        expected_skips["cuda_libs"] = (
            f"torch {torch.__version__} is not a CUDA build (torch.version.cuda is None): "
            "no CUDA libraries to load"
        )
    if not HAS_GPU:
        expected_skips["cuda"] = statuses["cuda"][1]
        assert statuses["cuda"][1].startswith("no GPU")
    if importlib.util.find_spec("tensorboard") is None:
        expected_skips["tensorboard"] = statuses["tensorboard"][1]
        assert statuses["tensorboard"][1].startswith("tensorboard is not installed")
    skipped = {name: reason for name, (status, reason) in statuses.items() if status == "skip"}
    assert skipped == expected_skips
    assert all(status == "pass" for name, (status, _) in statuses.items() if name not in skipped)


def test_results_print_as_they_finish_then_the_counts(full_run: FullRun):
    lines = full_run.proc.stdout.splitlines()
    result_lines = [line for line in lines if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert [line.split()[1] for line in result_lines] == list(NAMES)
    summary = full_run.report["summary"]
    assert lines[-3].startswith(f"{summary['pass']} passed, 0 failed, {summary['skip']} skipped")


def test_each_check_is_printed_once(capsys):
    """The results were printed twice: a line as each check finished, then a table of them all."""
    invocation = parse(["--only", "env,autograd,checkpoint"])
    assert suite.run(invocation, select(invocation.only, invocation.skip)) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("env", "autograd", "checkpoint"):
        mentions = [line for line in lines if name in line.split()[:2]]
        assert len(mentions) == 1 and mentions[0].startswith(f"PASS  {name} "), mentions
    assert lines[-1].startswith("3 passed, 0 failed, 0 skipped in ")


def test_the_json_report_has_the_promised_shape(full_run: FullRun):
    report = full_run.report
    assert set(report) == {"schema", "created", "argv", "env", "checks", "summary"}
    assert report["schema"] == "torchsmoke/report/v1"
    assert report["created"].endswith("Z") and report["created"][10] == "T"
    assert report["argv"] == FULL_RUN_ARGS
    env = report["env"]
    assert env["python"]["version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert env["torch"]["version"] == torch.__version__
    assert env["torch"]["variant"] and "cuda" in env["torch"]
    for name in ("torchvision", "torchaudio"):
        assert env[name] is None or isinstance(env[name]["version"], str)
    assert isinstance(env["gpus"], list) and isinstance(env["shm_bytes"], int)
    for check in report["checks"]:
        assert set(check) == {"name", "status", "reason", "duration_s", "details"}
        assert check["status"] in ("pass", "fail", "skip")
        assert isinstance(check["duration_s"], float) and isinstance(check["details"], dict)
        assert check["status"] == "pass" or check["reason"]
    summary = report["summary"]
    for status in ("pass", "fail", "skip"):
        assert summary[status] == sum(c["status"] == status for c in report["checks"])
    assert summary["duration_s"] >= sum(c["duration_s"] for c in report["checks"]) - 0.1


def test_training_details_show_real_learning(full_run: FullRun):
    for name in ("mlp", "cnn"):
        details = full_run.check(name)["details"]
        assert details["accuracy"] >= details["threshold"] > 0.5
        assert details["loss_last"] < details["loss_first"]
    assert full_run.check("ddp")["details"]["all_gather_max_diff"] == 0
    assert full_run.check("determinism")["details"]["cpu"]["steps"] > 0


def test_the_junit_xml_has_one_testcase_a_check(full_run: FullRun):
    suite = full_run.junit.getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == list(NAMES)
    skipped = {
        c.get("name"): c.find("skipped").get("message")
        for c in cases
        if c.find("skipped") is not None
    }
    report_skips = {
        c["name"]: c["reason"] for c in full_run.report["checks"] if c["status"] == "skip"
    }
    assert skipped == report_skips
    assert suite.get("tests") == str(len(NAMES)) and suite.get("failures") == "0"


def test_an_expectation_mismatch_exits_1_with_the_hint(tmp_path: Path, run_cli):
    variant = "cu118" if torch.version.cuda is None else "cpu"
    proc = run_cli(
        "--only", "env,expect", "--expect-variant", variant, "--json", "r.json", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    [env_check, expect_check] = report["checks"]
    assert env_check["status"] == "pass" and expect_check["status"] == "fail"
    hint = "was the CUDA wheel index used?" if variant == "cu118" else "CPU build was expected"
    assert hint in expect_check["reason"] and hint in proc.stdout
    assert report["summary"]["fail"] == 1


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU")
def test_require_gpu_without_a_gpu_exits_1_with_the_causes(capsys):
    assert main(["--only", "cuda", "--require-gpu"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  cuda" in out
    assert "without --gpus all" in out and "NVIDIA container toolkit is missing" in out


def test_quick_mode_skips_compile_with_the_reason(capsys):
    assert main(["--quick", "--only", "compile"]) == 0
    assert "SKIP  compile" in capsys.readouterr().out


def test_json_to_stdout_writes_no_file_even_in_a_read_only_folder(tmp_path, run_cli):
    """`--json -` (multi-node, Kubernetes logs): the report is printed whole at the end, and no
    partial report goes to a file named "-", which a read-only working directory would refuse."""
    tmp_path.chmod(0o555)
    try:
        done = run_cli("--only", "env,autograd", "--json", "-", cwd=tmp_path)
    finally:
        tmp_path.chmod(0o755)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
    (line,) = [x for x in done.stdout.splitlines() if x.startswith('{"schema"')]
    assert [c["name"] for c in json.loads(line)["checks"]] == ["env", "autograd"]


def test_the_json_report_is_rewritten_as_the_run_goes(tmp_path, monkeypatch, capsys):
    """Before the first check and after each one, a partial report names the check now running;
    the final one has neither key (what a stopped run leaves is the last partial one)."""
    written = []
    monkeypatch.setattr(report, "write_json", lambda data, path: written.append(dict(data)))
    invocation = parse(["--only", "env,autograd", "--json", str(tmp_path / "r.json")])
    assert suite.run(invocation, select(invocation.only, invocation.skip)) == 0
    assert [(d.get("partial"), d.get("running")) for d in written] == [
        (True, "env"),
        (True, "autograd"),
        (True, None),
        (None, None),
    ]
    assert [len(d["checks"]) for d in written] == [0, 1, 2, 2]
    assert written[-1]["argv"] == list(invocation.argv)


def test_omp_num_threads_is_left_as_the_user_chose(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    before = torch.get_num_threads()
    assert suite.configure_threads() == before
