from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from torchsmoke import envinfo


@pytest.mark.parametrize(
    ("version", "cuda", "hip", "variant"),
    [
        pytest.param("2.11.0+cu130", "13.0", None, "cu130", id="label wins"),
        pytest.param("2.7.1+cu118", "11.8", None, "cu118", id="cu118 label"),
        pytest.param("2.13.0+cpu", None, None, "cpu", id="cpu label"),
        pytest.param("2.11.0", "12.8", None, "cu128", id="PyPI Linux torch: no label, CUDA build"),
        pytest.param("2.11.0", None, None, "cpu", id="no label, no CUDA: cpu"),
        pytest.param("2.5.1+rocm6.2", None, "6.2.41133", "rocm6.2", id="rocm label"),
        pytest.param("2.5.1", None, "6.2.41133", "rocm6.2", id="rocm derived"),
        pytest.param("2.6.0+git1234", "12.6", None, "cu126", id="odd label: derived"),
    ],
)
def test_variant_from(version, cuda, hip, variant):
    assert envinfo.variant_from(version, cuda, hip) == variant


def test_public_version_and_label():
    assert envinfo.public_version("2.7.1+cu118") == "2.7.1"
    assert envinfo.local_label("2.7.1+cu118") == "cu118"
    assert envinfo.local_label("2.7.1") is None


def test_probe_turns_errors_into_none():
    @envinfo.probe
    def broken() -> int:
        raise RuntimeError("boom")

    assert broken() is None


def test_driver_version_from_proc(tmp_path: Path):
    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n"
        "GCC version:  gcc version 12.2.0\n"
    )
    assert envinfo.get_driver_version(lambda args: None, proc=proc) == "570.86.15"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19\n")
    assert envinfo.get_driver_version(lambda args: None, proc=proc) == "535.104.05"


def test_driver_version_from_a_fake_nvidia_smi(tmp_path: Path, monkeypatch):
    calls = []

    def fake_run(args: list[str]) -> tuple[int, str]:
        calls.append(args)
        return 0, "580.65.06\n580.65.06\n"

    monkeypatch.setattr(envinfo.shutil, "which", lambda name: f"/usr/bin/{name}")
    missing = tmp_path / "absent"
    assert envinfo.get_driver_version(fake_run, proc=missing) == "580.65.06"
    assert calls[0][0] == "nvidia-smi"
    assert envinfo.get_driver_version(lambda args: (9, ""), proc=missing) is None
    assert envinfo.get_driver_version(lambda args: None, proc=missing) is None


def test_memory_limit_reads_cgroup_v2_and_v1(tmp_path: Path):
    (tmp_path / "memory.max").write_text("max\n")
    assert envinfo.get_memory_limit_bytes(tmp_path) is None
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert envinfo.get_memory_limit_bytes(tmp_path) == 2**31
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
    assert envinfo.get_memory_limit_bytes(v1) is None


def test_missing_files_read_as_none(tmp_path: Path):
    assert envinfo.get_distro(tmp_path / "absent") is None
    assert envinfo.get_memory_bytes(tmp_path / "absent") is None
    assert envinfo.get_shm_bytes(str(tmp_path / "absent")) is None


def test_env_vars_keep_nvidia_and_cuda_only():
    environ = {"NVIDIA_VISIBLE_DEVICES": "all", "CUDA_HOME": "/x", "HOME": "/root", "XCUDA": "1"}
    assert envinfo.get_env_vars(environ) == {"CUDA_HOME": "/x", "NVIDIA_VISIBLE_DEVICES": "all"}


def test_a_missing_package_is_none_and_torch_is_found():
    assert envinfo.get_package("surely-not-an-installed-distribution") is None
    info = envinfo.get_package("torch")
    assert info is not None
    assert envinfo.public_version(torch.__version__).startswith(
        envinfo.public_version(info.version)
    )


def test_collect_is_json_ready_with_the_promised_keys():
    report = envinfo.collect(run=lambda args: None)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["python"]["version"].count(".") == 2
    assert data["torch"]["version"] == torch.__version__
    assert data["torch"]["variant"] == envinfo.variant_from(torch.__version__, torch.version.cuda)
    assert data["torch"]["cuda"] == torch.version.cuda
    assert isinstance(data["gpus"], list)
    assert "torchvision" in data and "torchaudio" in data and "shm_bytes" in data


def test_render_says_not_available_for_none():
    report = replace(envinfo.collect(run=lambda args: None), driver_version=None, shm_bytes=None)
    text = envinfo.render(report)
    assert "NVIDIA driver      : not available" in text
    assert "/dev/shm           : not available" in text
    assert torch.__version__ in text


def test_format_bytes():
    assert envinfo.format_bytes(64 * 2**20) == "64.0 MiB"
    assert envinfo.format_bytes(2 * 2**30) == "2.0 GiB"
    assert envinfo.format_bytes(None) == "not available"


def test_run_as_a_file_it_writes_the_env_report_alone(tmp_path: Path):
    """The image build runs envinfo.py by itself (no package around it) and bakes the JSON in."""
    import subprocess
    import sys

    out = tmp_path / "env-report.json"
    script = Path(envinfo.__file__)
    done = subprocess.run(
        [sys.executable, str(script), "--json", str(out)], cwd=tmp_path, capture_output=True,
        text=True, check=False, timeout=300, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert list(report) == ["env"]
    assert report["env"]["torch"]["version"] == torch.__version__
    assert "torch" in done.stdout and "Python" in done.stdout


def test_arch_list_is_read_without_a_gpu_and_none_on_a_cpu_build(monkeypatch):
    monkeypatch.setattr(torch._C, "_cuda_getArchFlags", lambda: "sm_75 sm_80 sm_120", raising=False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert envinfo.get_arch_list() == ["sm_75", "sm_80", "sm_120"]
    assert envinfo.get_torch().arch_list == ["sm_75", "sm_80", "sm_120"]
    assert "CUDA archs         : sm_75 sm_80 sm_120" in envinfo.render(envinfo.collect())
    monkeypatch.setattr(torch.version, "cuda", None)
    assert envinfo.get_arch_list() is None
    monkeypatch.delattr(torch._C, "_cuda_getArchFlags")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert envinfo.get_arch_list() is None
