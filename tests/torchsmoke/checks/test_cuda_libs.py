"""The cuda_libs check: which files it loads, what counts as optional, which versions must agree;
on a CPU build of torch it skips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchsmoke.checks import cuda_libs as libs
from torchsmoke.core import run_check


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF")
    return path


@pytest.mark.skipif(bool(torch.version.cuda), reason="this torch is a CUDA build")
def test_a_cpu_build_of_torch_skips_with_the_reason(real_env, context):
    result = run_check(libs.cuda_libs, context(real_env))
    assert result.status == "skip"
    assert result.reason.endswith("(torch.version.cuda is None): no CUDA libraries to load")


def test_find_libraries_takes_the_nvidia_wheels_and_torchs_cuda_libraries(tmp_path: Path):
    site = tmp_path / "site-packages"
    cublas = touch(site / "nvidia/cu13/lib/libcublas.so.13")
    cudnn = touch(site / "nvidia/cudnn/lib/libcudnn.so.9")
    touch(site / "nvidia/cu13/lib/stubs/libcuda.so")  # a link-time stub, never the driver
    touch(site / "nvidia/cu13/include/cuda.h")
    (site / "nvidia/cu13/lib/libcublas.so").symlink_to("libcublas.so.13")  # the same file
    lib = site / "torch/lib"
    torch_cuda = touch(lib / "libtorch_cuda.so")
    nvrtc = touch(lib / "libcaffe2_nvrtc.so")
    touch(lib / "libtorch_cpu.so")
    touch(lib / "libgomp.so.1")
    found = libs.find_libraries([site, site], lib)
    assert sorted(found) == sorted([cublas, cudnn, torch_cuda, nvrtc])
    assert libs.find_libraries([tmp_path / "none"], tmp_path / "none") == []


def test_load_all_retries_a_library_whose_dependency_loads_later():
    loaded: list[str] = []

    def fake_load(path: str) -> object:
        if path == "/b.so" and "/a.so" not in loaded:
            raise OSError("a.so: cannot open shared object file: No such file or directory")
        if path == "/c.so":
            raise OSError("libmlx5.so.1: cannot open shared object file: No such file or directory")
        loaded.append(path)
        return object()

    errors = libs.load_all([Path("/b.so"), Path("/c.so"), Path("/a.so")], load=fake_load)
    assert errors == {
        Path("/b.so"): None,
        Path("/c.so"): "libmlx5.so.1: cannot open shared object file: No such file or directory",
        Path("/a.so"): None,
    }


MISSING = "{}: cannot open shared object file: No such file or directory"


@pytest.mark.parametrize(
    ("name", "error", "have_driver", "optional"),
    [
        ("libcufile_rdma.so.1", MISSING.format("libmlx5.so.1"), True, "GPUDirect Storage"),
        ("nvshmem_bootstrap_mpi.so.3", MISSING.format("libmpi.so.40"), True, "NVSHMEM"),
        ("nvshmem_transport_ucx.so.3", MISSING.format("libucs.so.0"), True, "NVSHMEM"),
        ("libcaffe2_nvrtc.so", MISSING.format("libcuda.so.1"), False, "NVIDIA driver's"),
        ("libcaffe2_nvrtc.so", MISSING.format("libcuda.so.1"), True, None),  # driver there
        ("libcublas.so.13", MISSING.format("libcublasLt.so.13"), True, None),
        ("libcufile_rdma.so.1", "invalid ELF header", True, None),  # broken, not missing a dep
    ],
)
def test_what_counts_as_optional(name, error, have_driver, optional):
    why = libs.optional_reason(name, error, have_driver)
    assert (why is None) if optional is None else (optional in why)


@pytest.mark.parametrize(
    ("number", "triple"), [(91900, (9, 19, 0)), (92400, (9, 24, 0)), (8907, (8, 9, 7))]
)
def test_cudnn_version_numbers(number, triple):
    assert libs.cudnn_triple(number) == triple


def test_release():
    assert libs.release("9.19.0.56") == (9, 19, 0)
    assert libs.release((2, 28, 9)) == (2, 28, 9)
    assert libs.release("2.30.7") == (2, 30, 7)
    assert libs.release("dev") == ()


CUDNN = {"nvidia-cudnn-cu13": "9.19.0.56"}
NCCL = {"nvidia-nccl-cu13": "2.28.9"}


def test_versions_that_agree_give_nothing():
    assert libs.version_mismatches(91900, 91900, CUDNN, (2, 28, 9), NCCL) == []
    assert libs.version_mismatches(None, None, {}, None, {}) == []  # e.g. conda: no wheels


def test_each_mismatch_names_both_versions():
    lines = libs.version_mismatches(92400, 91900, CUDNN, (2, 27, 3), NCCL)
    assert lines == [
        "cuDNN: the library reports 9.24.0 (cudnnGetVersion) but torch reports 9.19.0 "
        "(torch.backends.cudnn.version())",
        "cuDNN: the wheel nvidia-cudnn-cu13 is 9.19.0.56 but the library loaded reports 9.24.0",
        "NCCL: the wheel nvidia-nccl-cu13 is 2.28.9 but torch.cuda.nccl.version() is 2.27.3",
    ]


def test_cudnn_library_version_asks_the_library():
    class FakeCudnn:
        def __init__(self) -> None:
            self.cudnnGetVersion = lambda: 91900

    class Function:
        restype = None

        def __call__(self) -> int:
            return 91900

    fake = FakeCudnn()
    fake.cudnnGetVersion = Function()
    paths = [Path("/x/libcudnn_ops.so.9"), Path("/x/libcudnn.so.9")]
    assert libs.cudnn_library_version(paths, load=lambda path: fake) == 91900
    assert libs.cudnn_library_version(paths[:1], load=lambda path: fake) is None


def test_the_check_on_a_doctored_cuda_build(tmp_path: Path, monkeypatch, real_env, context):
    """A CUDA build where one library misses a dependency and one only its optional one."""
    site = tmp_path / "site"
    good = touch(site / "nvidia/cu13/lib/libcudart.so.13")
    bad = touch(site / "nvidia/cu13/lib/libcublas.so.13")
    rdma = touch(site / "nvidia/cu13/lib/libcufile_rdma.so.1")
    errors = {
        good: None,
        bad: MISSING.format("libcublasLt.so.13"),
        rdma: MISSING.format("libmlx5.so.1"),
    }
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(libs, "site_dirs", lambda: [site])
    monkeypatch.setattr(libs, "torch_lib", lambda: site / "torch/lib")
    monkeypatch.setattr(libs, "load_in_child", lambda paths: {p: errors[p] for p in paths})
    monkeypatch.setattr(libs, "_driver_loads", lambda: False)
    monkeypatch.setattr(libs, "cudnn_library_version", lambda paths: None)
    monkeypatch.setattr(libs, "_torch_nccl", lambda: (2, 28, 9))
    monkeypatch.setattr(libs, "wheels", lambda name: NCCL if name == "nccl" else {})
    result = run_check(libs.cuda_libs, context(real_env))
    assert result.status == "fail"
    assert result.reason == (
        "libcublas.so.13 does not load: libcublasLt.so.13: cannot open shared object file: "
        "No such file or directory"
    )
    assert result.details["libraries"] == 3 and result.details["loaded"] == 1
    assert list(result.details["optional"]) == ["libcufile_rdma.so.1"]
    assert result.details["nccl"] == {"torch": (2, 28, 9), "wheels": NCCL}

    errors[bad] = None
    result = run_check(libs.cuda_libs, context(real_env))
    assert (result.status, result.details["loaded"]) == ("pass", 2)


def test_the_libraries_load_in_a_fresh_interpreter(tmp_path: Path):
    libm = next(Path(d) / "libm.so.6" for d in ("/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64")
                if (Path(d) / "libm.so.6").exists())  # fmt: skip
    broken = touch(tmp_path / "libbroken.so.1")
    errors = libs.load_in_child([libm, broken])
    assert errors[libm] is None
    assert "libbroken.so.1" in errors[broken]  # the loader's message ("file too short", ...)


def test_a_crash_while_loading_fails_the_check_not_the_suite(monkeypatch):
    code = "import os; os.abort()"  # the child dies as a crashing library initialiser would
    real_run = libs.subprocess.run
    monkeypatch.setattr(
        libs.subprocess, "run", lambda args, **kw: real_run([args[0], "-c", code], **kw)
    )
    with pytest.raises(libs.CheckFailed) as caught:
        libs.load_in_child([Path("/x.so")])
    assert caught.value.outcome.reason.startswith(
        "loading the CUDA libraries in a fresh interpreter crashed (SIGABRT)"
    )


def test_what_the_libraries_print_does_not_hide_the_answer(monkeypatch):
    real_run = libs.subprocess.run
    answer = libs._MARK + '{"/x.so": null}'
    code = f"print('[NVBLAS] config'); print({answer!r}); print('bye')"
    monkeypatch.setattr(
        libs.subprocess, "run", lambda args, **kw: real_run([args[0], "-c", code], **kw)
    )
    assert libs.load_in_child([Path("/x.so")]) == {Path("/x.so"): None}
    monkeypatch.setattr(
        libs.subprocess, "run", lambda args, **kw: real_run([args[0], "-c", "pass"], **kw)
    )
    with pytest.raises(libs.CheckFailed, match="gave no answer"):
        libs.load_in_child([Path("/x.so")])
