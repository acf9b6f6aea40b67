"""CUDA's rules for which kernels run on which GPU, on a table of real GPUs and real arch lists."""

from __future__ import annotations

import pytest

from torchbuild import archs
from torchbuild.archs import Arch

# torch._C._cuda_getArchFlags() of real builds (cuda13: measured in the cuda13 image).
CU130 = "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"
CU126 = "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90"
CU128 = "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120"
CU118 = "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_37 sm_90"

GPUS = {  # name: compute capability (NVIDIA's table)
    "GTX 1080": "6.1",
    "Tesla V100": "7.0",
    "Tesla T4": "7.5",
    "A100": "8.0",
    "A10 / RTX 3090": "8.6",
    "Jetson AGX Orin": "8.7",
    "L4 / L40": "8.9",
    "H100": "9.0",
    "B200": "10.0",
    "B300": "10.3",
    "RTX 5090": "12.0",
}


@pytest.mark.parametrize(
    ("text", "arch"),
    [
        ("sm_86", Arch(8, 6)),
        ("sm_120", Arch(12, 0)),
        ("compute_90", Arch(9, 0, ptx=True)),
        ("sm_90a", Arch(9, 0, variant="a")),
        ("compute_100f", Arch(10, 0, ptx=True, variant="f")),
        (" sm_37 ", Arch(3, 7)),
        ("sm_8", None),
        ("gfx90a", None),
        ("sm86", None),
        ("", None),
    ],
)
def test_parse_arch(text, arch):
    assert archs.parse_arch(text) == arch
    if arch is not None:
        assert str(arch) == text.strip()


def test_parse_arch_list_takes_torchs_string_or_a_list_without_repeats():
    assert archs.parse_arch_list("sm_75 sm_80  compute_80 sm_80") == [
        Arch(7, 5), Arch(8, 0), Arch(8, 0, ptx=True)
    ]  # fmt: skip
    assert archs.parse_arch_list(["sm_90", "bogus"]) == [Arch(9, 0)]
    assert archs.parse_arch_list("sm_75,sm_80") == [Arch(7, 5), Arch(8, 0)]
    assert archs.parse_arch_list(None) == archs.parse_arch_list("") == []


@pytest.mark.parametrize(
    ("text", "capability"),
    [("8.6", (8, 6)), ("12.0", (12, 0)), ("sm_70", (7, 0)), ((9, 0), (9, 0))],
)
def test_parse_capability(text, capability):
    assert archs.parse_capability(text) == capability


@pytest.mark.parametrize("text", ["8", "eight.six", "compute", ""])
def test_a_bad_capability_is_a_value_error(text):
    with pytest.raises(ValueError, match="not a compute capability"):
        archs.parse_capability(text)


@pytest.mark.parametrize(
    ("arch", "capability", "runs"),
    [
        ("sm_80", "8.0", True),
        ("sm_80", "8.6", True),  # same major, newer minor
        ("sm_80", "8.9", True),
        ("sm_86", "8.0", False),  # an older minor
        ("sm_80", "9.0", False),  # machine code never crosses majors
        ("sm_100", "12.0", False),
        ("sm_90", "10.0", False),
        ("compute_80", "9.0", True),  # PTX is compiled for any newer GPU
        ("compute_120", "12.1", True),
        ("compute_90", "8.9", False),  # but not an older one
        ("sm_90a", "9.0", True),  # architecture-specific: that capability only
        ("sm_90a", "9.1", False),
        ("compute_90a", "10.0", False),
        ("sm_100f", "10.3", True),  # family-specific: the same major
        ("compute_100f", "12.0", False),
    ],
)
def test_cudas_rules(arch, capability, runs):
    assert archs.runs_on(archs.parse_arch(arch), capability) is runs


@pytest.mark.parametrize(
    ("arch_list", "fitting"),
    [
        (CU130, {"Tesla T4", "A100", "A10 / RTX 3090", "Jetson AGX Orin", "L4 / L40", "H100",
                 "B200", "B300", "RTX 5090"}),
        (CU126, {"GTX 1080", "Tesla V100", "Tesla T4", "A100", "A10 / RTX 3090",
                 "Jetson AGX Orin", "L4 / L40", "H100"}),
        (CU128, {"Tesla T4", "A100", "A10 / RTX 3090", "Jetson AGX Orin", "L4 / L40", "H100",
                 "B200", "B300", "RTX 5090"}),
        (CU118, {"GTX 1080", "Tesla V100", "Tesla T4", "A100", "A10 / RTX 3090",
                 "Jetson AGX Orin", "L4 / L40", "H100"}),
        ("sm_80 compute_80", set(GPUS) - {"GTX 1080", "Tesla V100", "Tesla T4"}),
        ("", set()),
    ],
    ids=["cu130", "cu126", "cu128", "cu118", "sm_80+ptx", "empty"],
)  # fmt: skip
def test_the_real_gpus_each_build_runs_on(arch_list, fitting):
    assert {name for name, cap in GPUS.items() if archs.fits(arch_list, cap)} == fitting
    for name, cap in GPUS.items():
        assert (archs.misfit(arch_list, cap, name) is None) is (name in fitting)


def test_the_misfit_line_names_the_gpu_its_arch_and_the_builds_list():
    line = archs.misfit(CU130, "7.0", "GPU 0 Tesla V100-SXM2-16GB")
    assert line == (
        "GPU 0 Tesla V100-SXM2-16GB is sm_70; this torch has kernels for "
        "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120: it needs a build with sm_70 "
        "(or PTX compute_70 or older)"
    )
    assert "it needs a build with sm_60..sm_61 " in archs.misfit(CU130, "6.1")
    assert archs.misfit("", "9.0").startswith("the GPU is sm_90; this torch has kernels for none")


def test_sm_name():
    assert archs.sm_name("7.0") == archs.sm_name((7, 0)) == "sm_70"
    assert archs.sm_name("12.0") == "sm_120"
