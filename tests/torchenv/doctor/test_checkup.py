"""`invoke doctor` put together: a healthy host, the table, the exit codes, the real machine."""

import pytest
from tests.support import doctor_cli
from tests.support.fakehost import (
    CUDA,
    DOCKER,
    check,
    healthy,
)  # fmt: skip
from tests.support.fakerunner import reply

from torchenv.doctor import checkup as doctor
from torchenv.doctor.checkup import Row, exit_code, render, run_checks


def test_healthy_gpu_host_is_all_ok():
    by_name, rows = check()
    assert {r.status for r in rows} == {"ok"}, render(rows)
    assert (
        by_name["Docker daemon"].detail == f"engine 20.10.24+dfsg1 (client {DOCKER} 20.10.24+dfsg1)"
    )
    assert by_name["BuildKit"].detail.startswith(f"DOCKER_BUILDKIT=1 {DOCKER} build")
    assert "in /data/docker" in by_name["free disk"].detail
    assert exit_code(rows) == 0


def test_render_aligns_and_shows_fixes():
    rows = [Row("a", "ok", "fine", "unused"), Row("longer name", "fail", "broken", "do this")]
    assert render(rows).splitlines() == [
        "check        status  detail",
        "a            ok      fine",
        "longer name  fail    broken",
        "                     fix: do this",
        "1 ok, 0 warn, 1 fail, 0 skip",
    ]
    assert exit_code(rows) == 1 and exit_code(rows[:1]) == 0


def test_main_prints_table_and_rejects_unknown_target(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "run_checks", lambda **kw: [Row("x", "warn", "careful", "fix")])
    assert doctor_cli.main(["--target", "cpu"]) == 0
    assert "x      warn    careful" in capsys.readouterr().out
    assert doctor_cli.main(["--target", "nope"]) == 2
    assert "unknown target 'nope'" in capsys.readouterr().err


@pytest.mark.engine
def test_real_doctor_on_this_machine():
    rows = run_checks()
    print(render(rows))
    by_name = {r.name: r for r in rows}
    assert by_name["Docker daemon"].status == "ok"
    assert by_name["BuildKit"].status == "ok"
    if doctor.probe_gpu(doctor.subprocess_runner).driver is None:  # no GPU on the dev/CI machines
        for target in CUDA:
            row = by_name[f"driver for {target.name}"]
            assert row.status == "warn", row
            assert "no NVIDIA driver/GPU found" in row.detail
            assert "GPU checks will skip" in row.detail and target.min_driver in row.fix


def test_gpu_fit_row_per_cuda_target_names_the_gpu_it_cannot_run_and_the_target_that_can():
    runner = healthy()
    fit_query = tuple(doctor.gpufit.QUERY)
    runner.answers = {**runner.answers, fit_query: reply("0, Tesla V100-SXM2-16GB, 7.0\n")}
    by_name, _ = check(runner)
    row = by_name["GPU fit of cuda13"]
    assert row.status == "fail" and "GPU 0 Tesla V100-SXM2-16GB is sm_70" in row.detail
    measured = [t.name for t in CUDA if t.cuda_archs]
    assert "cuda13" in measured and row.fix.startswith(("use ", "no target"))
    unmeasured = [t.name for t in CUDA if not t.cuda_archs]
    for name in unmeasured:
        assert by_name[f"GPU fit of {name}"].status == "skip"


def test_gpu_fit_ok_on_a_gpu_the_kernels_cover():
    runner = healthy()
    runner.answers = {**runner.answers, tuple(doctor.gpufit.QUERY): reply("0, NVIDIA H100, 9.0\n")}
    by_name, _ = check(runner)
    assert by_name["GPU fit of cuda13"].status == "ok"
    assert "sm_90" in by_name["GPU fit of cuda13"].detail
