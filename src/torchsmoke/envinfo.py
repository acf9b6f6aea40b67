"""The environment report: collected by tiny probes, rendered apart.

Every `get_*` probe returns a value or None and never raises (the `probe` decorator turns any
error into None); only `render` turns None into "not available". Probes that run a program take
the runner as an argument, so tests feed them a fake. `collect()` fills the frozen `EnvReport`;
`dataclasses.asdict(report)` is its JSON form (the "env" of the smoke report).

Nothing here imports torchvision or torchaudio (a broken one must not break the report): their
versions come from importlib.metadata.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import torch

# A runner takes an argument list and returns (exit status, stdout), or None when the program
# is missing, cannot start or times out.
Runner = Callable[[list[str]], tuple[int, str] | None]
T = TypeVar("T")

NOT_AVAILABLE = "not available"
ENV_PREFIXES = ("NVIDIA_", "CUDA_")
_VARIANT_LABEL = re.compile(r"cpu|cu\d{3,}|rocm\d+(\.\d+)*|xpu")


def run_command(args: list[str], timeout: float = 5.0) -> tuple[int, str] | None:
    """The real runner: no shell, short timeout, None instead of an exception."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, done.stdout


def probe(func: Callable[..., T]) -> Callable[..., T | None]:
    """A probe never crashes the report: any exception reads as "not available"."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return func(*args, **kwargs)
        except Exception:
            return None

    return wrapper


@dataclass(frozen=True)
class PythonInfo:
    version: str
    implementation: str
    executable: str


@dataclass(frozen=True)
class OSInfo:
    system: str
    release: str
    machine: str
    distro: str | None
    glibc: str | None


@dataclass(frozen=True)
class TorchInfo:
    version: str
    variant: str  # cpu, cu118, cu130, rocm6.2 ...
    cuda: str | None  # torch.version.cuda
    cudnn: int | None
    nccl: str | None
    hip: str | None
    cuda_available: bool
    num_threads: int
    # the GPU architectures torch has kernels for ("sm_75", ...); None on a build without CUDA
    arch_list: list[str] | None = None


@dataclass(frozen=True)
class PackageInfo:
    version: str  # the installed distribution's version ("0.26.0")
    build: str | None  # the package's own __version__, label included ("0.26.0+cu130")
    variant: str | None  # from the local version label; None without one


@dataclass(frozen=True)
class GPUInfo:
    index: int
    name: str
    capability: str
    memory_bytes: int


@dataclass(frozen=True)
class EnvReport:
    python: PythonInfo
    os: OSInfo
    cpu_count: int | None
    memory_bytes: int | None
    memory_limit_bytes: int | None  # the cgroup limit, when the container has one
    torch: TorchInfo
    torchvision: PackageInfo | None
    torchaudio: PackageInfo | None
    gpus: list[GPUInfo]
    driver_version: str | None
    shm_bytes: int | None
    compilers: dict[str, str | None]
    env_vars: dict[str, str] = field(default_factory=dict)
    target: str | None = None  # the torchenv target of the image (TORCHENV_TARGET); None outside

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- version labels ---------------------------------------------------------------------------


def public_version(version: str) -> str:
    """'2.7.1+cu118' -> '2.7.1'."""
    return version.split("+", 1)[0]


def local_label(version: str) -> str | None:
    """'2.7.1+cu118' -> 'cu118'; None without a label."""
    return version.split("+", 1)[1] if "+" in version else None


def variant_from(version: str, cuda: str | None = None, hip: str | None = None) -> str:
    """The build variant: the local label when it names one, else derived from the build.

    PyPI's Linux torch has no label but is a CUDA build: torch.version.cuda "12.8" -> "cu128".
    """
    label = local_label(version)
    if label and _VARIANT_LABEL.fullmatch(label):
        return label
    if cuda:
        return "cu" + "".join(cuda.split(".")[:2])
    if hip:
        return "rocm" + ".".join(hip.split(".")[:2])
    return "cpu"


def package_variant(version: str) -> str | None:
    label = local_label(version)
    return label if label and _VARIANT_LABEL.fullmatch(label) else None


# --- probes -----------------------------------------------------------------------------------


@probe
def get_distro(os_release: Path = Path("/etc/os-release")) -> str | None:
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return None


@probe
def get_glibc() -> str | None:
    text = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    if text:
        return text.split()[-1]
    lib, version = platform.libc_ver()
    return version if lib == "glibc" and version else None


@probe
def get_cpu_count() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


@probe
def get_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


@probe
def get_memory_limit_bytes(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The container's memory limit: cgroup v2 memory.max, else v1 limit_in_bytes."""
    for path in (cgroup / "memory.max", cgroup / "memory" / "memory.limit_in_bytes"):
        if path.exists():
            text = path.read_text().strip()
            if text == "max" or int(text) >= 2**60:  # v1 "unlimited" is a huge number
                return None
            return int(text)
    return None


@probe
def get_shm_bytes(path: str = "/dev/shm") -> int | None:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


@probe
def get_build_version(dist: metadata.Distribution, package: str) -> str | None:
    """`__version__` from <package>/version.py, read as text: importing could fail or be slow.

    PyPI's torchvision 0.26.0 says "0.26.0" in its metadata but "0.26.0+cu130" there.
    """
    text = Path(str(dist.locate_file(f"{package}/version.py"))).read_text()
    match = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", text, re.M)
    return match.group(1) if match else None


@probe
def get_package(name: str) -> PackageInfo | None:
    """Installed version and build of a distribution, without importing it."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    build = get_build_version(dist, name)
    return PackageInfo(dist.version, build, package_variant(build or dist.version))


@probe
def get_cudnn() -> int | None:
    # torch.backends.cudnn leaves both functions unannotated
    available = torch.backends.cudnn.is_available()  # type: ignore[no-untyped-call]
    return torch.backends.cudnn.version() if available else None  # type: ignore[no-untyped-call]


@probe
def get_nccl() -> str | None:
    if not torch.version.cuda:
        return None
    version = torch.cuda.nccl.version()  # type: ignore[no-untyped-call]  # unannotated in torch
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


@probe
def get_arch_list() -> list[str] | None:
    """torch's kernel architectures, readable without a GPU (`torch.cuda.get_arch_list()` gives
    [] without one): `torch._C._cuda_getArchFlags()`, "sm_75 sm_80 ...", on a CUDA build."""
    flags = getattr(torch._C, "_cuda_getArchFlags", None)
    text = flags() if flags is not None and torch.version.cuda else None
    return str(text).split() if text else None


@probe
def get_cuda_available() -> bool:
    return torch.cuda.is_available()


@probe
def get_gpus() -> list[GPUInfo]:
    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            GPUInfo(index, props.name, f"{props.major}.{props.minor}", int(props.total_memory))
        )
    return gpus


@probe
def get_driver_version(
    run: Runner = run_command, proc: Path = Path("/proc/driver/nvidia/version")
) -> str | None:
    """The NVIDIA kernel driver version, from /proc or else nvidia-smi."""
    if proc.exists():
        match = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+(?:\.\d+)+)", proc.read_text())
        if match:
            return match.group(1)
    if shutil.which("nvidia-smi") is None:
        return None
    out = run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if out is None or out[0] != 0 or not out[1].strip():
        return None
    return out[1].strip().splitlines()[0].strip()


@probe
def get_compilers() -> dict[str, str | None]:
    """The C compiler (triton, CUDA) and C++ compiler (inductor on CPU) torch.compile would use."""
    c_candidates = [os.environ.get("CC"), "cc", "gcc", "clang"]
    cxx_candidates = [os.environ.get("CXX") or "g++"]
    return {
        "cc": next((p for c in c_candidates if c and (p := shutil.which(c))), None),
        "cxx": next((p for c in cxx_candidates if (p := shutil.which(c))), None),
    }


def get_env_vars(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {k: v for k, v in sorted(environ.items()) if k.startswith(ENV_PREFIXES)}


def get_torch() -> TorchInfo:
    version = torch.__version__
    cuda = torch.version.cuda
    hip = getattr(torch.version, "hip", None)
    return TorchInfo(
        version=version,
        variant=variant_from(version, cuda, hip),
        cuda=cuda,
        cudnn=get_cudnn(),
        nccl=get_nccl(),
        hip=hip,
        cuda_available=bool(get_cuda_available()),
        num_threads=torch.get_num_threads(),
        arch_list=get_arch_list(),
    )


def get_target() -> str | None:
    """The torchenv target this image was built for (its Dockerfile sets TORCHENV_TARGET)."""
    return os.environ.get("TORCHENV_TARGET") or None


def collect(run: Runner = run_command) -> EnvReport:
    return EnvReport(
        python=PythonInfo(
            platform.python_version(), platform.python_implementation(), sys.executable
        ),
        os=OSInfo(
            platform.system(), platform.release(), platform.machine(), get_distro(), get_glibc()
        ),
        cpu_count=get_cpu_count(),
        memory_bytes=get_memory_bytes(),
        memory_limit_bytes=get_memory_limit_bytes(),
        torch=get_torch(),
        torchvision=get_package("torchvision"),
        torchaudio=get_package("torchaudio"),
        gpus=get_gpus() or [],
        driver_version=get_driver_version(run),
        shm_bytes=get_shm_bytes(),
        compilers=get_compilers() or {"cc": None, "cxx": None},
        env_vars=get_env_vars(),
        target=get_target(),
    )


# --- rendering --------------------------------------------------------------------------------


def format_bytes(n: int | None) -> str:
    if n is None:
        return NOT_AVAILABLE
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _text(value: Any) -> str:
    return NOT_AVAILABLE if value is None else str(value)


def render(report: EnvReport) -> str:
    """The report as aligned `key: value` lines."""
    t = report.torch

    def package(info: PackageInfo | None) -> str:
        if info is None:
            return "not installed"
        return (
            info.version if info.build in (None, info.version) else f"{info.version} ({info.build})"
        )

    gpus = [
        f"{g.index}: {g.name} (capability {g.capability}, {format_bytes(g.memory_bytes)})"
        for g in report.gpus
    ]
    rows = [
        ("Python", f"{report.python.version} ({report.python.executable})"),
        ("OS", f"{report.os.distro or report.os.system} {report.os.machine}"),
        ("kernel", report.os.release),
        ("glibc", _text(report.os.glibc)),
        ("CPUs", _text(report.cpu_count)),
        ("memory", format_bytes(report.memory_bytes)),
        ("memory limit", format_bytes(report.memory_limit_bytes)),
        ("torch", f"{t.version} (variant {t.variant}, {t.num_threads} threads)"),
        ("torchvision", package(report.torchvision)),
        ("torchaudio", package(report.torchaudio)),
        ("CUDA (torch build)", _text(t.cuda)),
        ("cuDNN", _text(t.cudnn)),
        ("NCCL", _text(t.nccl)),
        ("CUDA archs", " ".join(t.arch_list) if t.arch_list else NOT_AVAILABLE),
        ("CUDA available", str(t.cuda_available)),
        ("GPUs", "; ".join(gpus) or "none"),
        ("NVIDIA driver", _text(report.driver_version)),
        ("/dev/shm", format_bytes(report.shm_bytes)),
        ("C compiler", _text(report.compilers.get("cc"))),
        ("C++ compiler", _text(report.compilers.get("cxx"))),
    ]
    rows += list(report.env_vars.items())
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    """`python envinfo.py --json PATH`: the report alone, as the image build bakes it in.

    The build runs this file by itself (bind-mounted, before the smoke package is copied in), so
    that editing the rest of the package does not redo the step; the JSON is {"env": ...}, the
    same "env" as in the smoke suite's report.
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="envinfo.py", description="Write the environment report.")
    parser.add_argument("--json", required=True, metavar="PATH", help="write the report here")
    args = parser.parse_args(argv)
    report = collect()
    Path(args.json).write_text(json.dumps({"env": report.to_dict()}, indent=2, default=str) + "\n")
    print(render(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
