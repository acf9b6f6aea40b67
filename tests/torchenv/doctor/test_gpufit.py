"""GPU fit: the host's GPUs (nvidia-smi) against each target's kernel architectures."""

import dataclasses

from tests.support.fakerunner import FakeRunner, reply

from torchenv import matrix
from torchenv.doctor import gpufit

V100 = gpufit.HostGpu("0", "Tesla V100-SXM2-16GB", "7.0")
A10 = gpufit.HostGpu("1", "NVIDIA A10", "8.6")
H100 = gpufit.HostGpu("0", "NVIDIA H100 80GB HBM3", "9.0")
NEW = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


def target(name: str, archs: list[str], cuda: str | None = "13.0") -> matrix.Target:
    base = matrix.get("cuda13")
    variant = "cu" + cuda.replace(".", "") if cuda else "cpu"
    return dataclasses.replace(base, name=name, cuda_archs=tuple(archs), cuda=cuda, variant=variant)


def test_parse_query_reads_index_name_capability_and_skips_what_it_cannot_read():
    text = "0, Tesla V100-SXM2-16GB, 7.0\n1, NVIDIA A10, 8.6\n2, Old, [N/A]\n\n"
    assert gpufit.parse_query(text) == [V100, A10]


def test_probe_asks_nvidia_smi_and_is_empty_without_it():
    runner = FakeRunner({tuple(gpufit.QUERY): reply(stdout="0, NVIDIA H100 80GB HBM3, 9.0\n")})
    assert gpufit.probe(runner) == [H100]
    assert gpufit.probe(FakeRunner()) == []  # no nvidia-smi
    failing = FakeRunner(
        {tuple(gpufit.QUERY): reply(returncode=9, stderr="NVML: driver not loaded")}
    )
    assert gpufit.probe(failing) == []


def test_a_v100_does_not_fit_a_build_from_sm_75_and_the_fix_names_a_target_that_does():
    new, old = (
        target("cuda13", NEW),
        target("cuda118", ["sm_60", "sm_70", "sm_75", "sm_80"], "11.8"),
    )
    result = gpufit.fit(new, [V100, A10], [new, old])
    assert result.status == "fail"
    assert "GPU 0 Tesla V100-SXM2-16GB is sm_70" in result.detail and "sm_75" in result.detail
    assert result.fix == "use cuda118"


def test_a_fitting_gpu_is_ok_and_names_its_arch():
    result = gpufit.fit(target("cuda13", NEW), [H100], [])
    assert result.status == "ok" and "sm_90" in result.detail


def test_ptx_runs_on_newer_gpus():
    assert gpufit.fit(target("t", ["compute_60"]), [H100], []).status == "ok"


def test_cpu_targets_no_gpu_and_unmeasured_targets_skip_with_a_reason():
    assert gpufit.fit(target("cpu", [], None), [H100], []).status == "skip"
    assert "no GPU found" in gpufit.fit(target("t", NEW), [], []).detail
    unmeasured = gpufit.fit(target("t", []), [H100], [])
    assert unmeasured.status == "skip" and "not measured" in unmeasured.detail


def test_no_target_fits_says_so():
    t = target("cuda13", NEW)
    assert gpufit.fit(t, [V100], [t]).fix == "no target of the matrix fits: add one"


def test_refusal_prefers_the_image_label_and_offers_the_override():
    t = target("cuda13", NEW)
    line = gpufit.refusal(t, None, [V100])
    assert line and line.startswith("target cuda13: GPU 0 Tesla V100") and "--ignore-arch" in line
    assert gpufit.refusal(t, "sm_70 sm_80", [V100]) is None  # the image says it has sm_70
    assert gpufit.refusal(t, None, [H100]) is None
    assert gpufit.refusal(target("t", []), None, [V100]) is None  # nothing known: no refusal


def test_refuse_raises_one_line_before_a_container_starts():
    import pytest

    from torchenv.errors import UserError

    runner = FakeRunner({tuple(gpufit.QUERY): reply(stdout="0, Tesla V100-SXM2-16GB, 7.0\n")})
    with pytest.raises(UserError, match="GPU 0 Tesla V100-SXM2-16GB is sm_70"):
        gpufit.refuse(target("cuda13", NEW), None, runner)
    gpufit.refuse(target("cuda118", ["sm_70"], "11.8"), None, runner)  # fits: no error


REAL_GPUS = {
    "Tesla V100": "7.0", "Tesla T4": "7.5", "A100": "8.0", "L4": "8.9", "L40": "8.9",
    "H100": "9.0", "B200": "10.0", "GeForce RTX 5090": "12.0",
}  # fmt: skip


def test_real_gpus_against_each_targets_recorded_list():
    """CUDA's rules on real GPUs against the lists measured in the images (targets.toml)."""
    recorded = {t.name: t for t in matrix.load().values() if t.cuda_archs}
    assert {"cuda13", "cuda132"} <= set(recorded)
    for name, t in recorded.items():
        fitting = {
            gpu for gpu, cc in REAL_GPUS.items()
            if gpufit.fit(t, [gpufit.HostGpu("0", gpu, cc)], []).status == "ok"
        }  # fmt: skip
        # sm_75 sm_80 sm_86 sm_90 sm_100 sm_120: everything from Turing on, no Volta
        assert fitting == set(REAL_GPUS) - {"Tesla V100"}, name
