"""The smoke report as Markdown for CI job summaries (torchenv.run.report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchenv import matrix
from torchenv.run import report

FULL = {
    "schema": "torchsmoke/report/v1",
    "created": "2026-11-23T10:00:00+00:00",
    "argv": ["--quick", "--json", "reports/smoke-cuda13.json"],
    "env": {
        "python": {"version": "3.11.2"},
        "torch": {"version": "2.11.0+cu130", "variant": "cu130", "cuda": "13.0"},
        "torchvision": {"version": "0.26.0"},
        "torchaudio": None,
        "gpus": [],
        "shm_bytes": 2 * 2**30,
    },
    "checks": [
        {"name": "imports", "status": "pass", "reason": None, "duration_s": 1.5, "details": {}},
        {
            "name": "cuda",
            "status": "skip",
            "reason": "no GPU visible (run with --gpus all)",
            "duration_s": 0.004,
            "details": {},
        },
        {
            "name": "dataloader",
            "status": "fail",
            "reason": "bus error | /dev/shm is 64 MB:\nrun with --shm-size=2g",
            "duration_s": 2.25,
            "details": {"workers": 2},
        },
    ],
    "summary": {"pass": 1, "fail": 1, "skip": 1, "duration_s": 3.754},
}


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_full_report():
    text = report.to_markdown(FULL, target="cuda13")
    assert text.endswith("\n")
    assert "target **cuda13**, torch 2.11.0+cu130, variant cu130, CUDA 13.0" in text
    assert "Python 3.11.2, GPUs: none, /dev/shm 2048 MiB" in text
    assert "1 passed, 1 failed, 1 skipped in 3.75 s" in text
    assert table_rows(text) == [
        "| check | status | duration | reason |",
        "| --- | --- | --- | --- |",
        "| imports | pass | 1.50 s |  |",
        "| cuda | skip | 0.00 s | no GPU visible (run with --gpus all) |",
        "| dataloader | **fail** | 2.25 s "
        "| bus error \\| /dev/shm is 64 MB: run with --shm-size=2g |",
    ]


def test_every_row_has_four_cells():
    for row in table_rows(report.to_markdown(FULL)):
        assert row.replace("\\|", "").count("|") == 5


def test_an_empty_report_still_renders():
    text = report.to_markdown({})
    assert "target **n/a**, torch n/a, variant n/a, CUDA none, Python n/a" in text
    assert "0 passed, 0 failed, 0 skipped" in text
    assert table_rows(text) == [
        "| check | status | duration | reason |",
        "| --- | --- | --- | --- |",
    ]


def test_missing_keys_and_odd_values_are_tolerated():
    partial = {
        "env": {"torch": {"version": "2.11.0"}, "gpus": [{"name": "NVIDIA H100"}, "A100"]},
        "checks": [{"name": "train", "status": "pass"}, "not a check", {"status": "skip"}],
    }
    text = report.to_markdown(partial)
    assert "torch 2.11.0, variant n/a" in text
    assert "GPUs: NVIDIA H100, A100" in text
    assert "/dev/shm n/a" in text
    assert "1 passed, 0 failed, 1 skipped" in text  # counted from the checks
    assert table_rows(text)[2:] == ["| train | pass | n/a |  |", "| n/a | skip | n/a |  |"]


def test_target_from_the_env_when_not_given():
    assert "target **cpu**" in report.to_markdown({"env": {"target": "cpu"}})


def test_reads_the_report_the_suite_really_writes(tmp_path):
    """Not a made-up shape: the suite's own JSON (env and one training check) on host torch."""
    pytest.importorskip("torch", reason="the smoke suite needs torch in this Python")
    path = tmp_path / "smoke-cuda13.json"
    done = subprocess.run(
        [sys.executable, "-m", "torchsmoke", "--only", "env,autograd", "--json", str(path)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "TORCHENV_TARGET": "cuda13"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = report.load(path)
    assert data["env"]["target"] == "cuda13"
    import torch

    text = report.to_markdown(data)
    assert f"target **cuda13**, torch {torch.__version__}" in text
    assert "| env | pass |" in text and "| autograd | pass |" in text
    assert "2 passed, 0 failed, 0 skipped in " in text


@pytest.mark.parametrize(
    ("name", "target"),
    [("smoke-cuda13.json", "cuda13"), ("smoke-cpu.json", "cpu"), ("report.json", None)],
)
def test_target_from_path(name, target):
    assert report.target_from_path(Path("reports") / name) == target


def test_the_report_file_name_knows_every_target():
    for name in matrix.names():
        assert report.target_from_path(Path(f"reports/smoke-{name}.json")) == name


def test_main_prints_markdown(tmp_path: Path, capsys):
    path = tmp_path / "smoke-cuda13.json"
    path.write_text(json.dumps(FULL))
    assert report.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Smoke suite: cuda13\n")
    assert "| dataloader | **fail** |" in out


def test_main_fails_on_a_missing_or_broken_report(tmp_path: Path, capsys):
    assert report.main([str(tmp_path / "smoke-cpu.json")]) == 1
    assert "cannot read the smoke report" in capsys.readouterr().err
    broken = tmp_path / "smoke-cpu.json"
    broken.write_text('{"checks": [')
    assert report.main([str(broken)]) == 1
    assert "is not JSON" in capsys.readouterr().err
    broken.write_text("[]")
    assert report.main([str(broken)]) == 1
    assert "expected a JSON object" in capsys.readouterr().err


def test_main_missing_ok_prints_a_note(tmp_path: Path, capsys):
    assert report.main(["--missing-ok", str(tmp_path / "smoke-cuda12.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Smoke suite: cuda12\n")
    assert "the image did not build, or the suite did not start" in out


def test_python_dash_m(tmp_path: Path):
    path = tmp_path / "smoke-cpu.json"
    path.write_text(json.dumps(FULL))
    result = subprocess.run(
        [sys.executable, "-m", "torchenv.run.report", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("### Smoke suite: cpu\n")
