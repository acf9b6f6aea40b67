"""`cuda_libs`: every CUDA shared library of the image loads, and the versions agree; no GPU needed.

A CUDA build of torch takes CUDA from the `nvidia-*` wheels (site-packages/nvidia/*/lib) and
has CUDA libraries of its own (torch/lib). Each is loaded with dlopen (ctypes.CDLL); one that
does not load is named with the loader's message. Some are plugins for hardware or software an
image need not have (GPUDirect RDMA, NVSHMEM's MPI/UCX/InfiniBand transports): those are listed
as optional. Those that need the driver's libcuda.so.1, which only a GPU container has, are
listed apart when the driver is absent. Without a GPU the check also compares the cuDNN version
the library reports (cudnnGetVersion) with torch's and the nvidia-cudnn wheel's, and the
nvidia-nccl wheel's with torch's NCCL.
"""

from __future__ import annotations

import ctypes
import importlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from torchsmoke.core import CheckFailed, CheckSkipped, Context, Outcome, check, passed

DRIVER = "libcuda.so.1"
# (library name, why an image may lack what it needs): optional when it does not load.
OPTIONAL: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"libcufile_rdma\.so"),
        "GPUDirect Storage over RDMA: needs libmlx5.so.1 (Mellanox RDMA)",
    ),
    (
        re.compile(r"nvshmem_(bootstrap|transport)_\w+\.so"),
        "an NVSHMEM bootstrap/transport plugin: needs its MPI, PMIx, OpenSHMEM, UCX, libfabric "
        "or InfiniBand library",
    ),
)
_TORCH_CUDA_LIB = re.compile(
    r"cuda|nvrtc|nvshmem|cudnn|nccl|cublas|cufft|curand|cusolver|cusparse|nvjitlink|cupti|nvtx",
    re.I,
)
_SHARED = re.compile(r"\.so(\.\d+)*$")
_CUDNN = re.compile(r"libcudnn\.so(\.\d+)*$")
_NEEDS_DRIVER = re.compile(re.escape(DRIVER) + r": cannot open shared object file")

Loader = Callable[[str], object]


def find_libraries(site_dirs: Iterable[Path], torch_lib: Path) -> list[Path]:
    """The shared libraries of the nvidia wheels (stubs left out) and torch's CUDA libraries,
    each file once, in path order."""
    found: dict[Path, Path] = {}
    candidates: list[Path] = []
    for site in site_dirs:
        if (site / "nvidia").is_dir():
            candidates += sorted((site / "nvidia").rglob("*.so*"))
    if torch_lib.is_dir():
        candidates += sorted(p for p in torch_lib.glob("*.so*") if _TORCH_CUDA_LIB.search(p.name))
    for path in sorted(candidates, key=Path.is_symlink):  # a file's own name before its links
        if path.is_file() and _SHARED.search(path.name) and "stubs" not in path.parts:
            found.setdefault(path.resolve(), path)
    return sorted(found.values())


def load_all(paths: Iterable[Path], load: Loader = ctypes.CDLL) -> dict[Path, str | None]:
    """dlopen each library: None when it loaded, else the loader's message. A library whose
    dependency loads later in the list is tried again until no more load."""
    errors: dict[Path, str | None] = {}
    pending = list(paths)
    while pending:
        still: list[Path] = []
        for path in pending:
            try:
                load(str(path))
            except OSError as exc:
                errors[path] = str(exc).strip() or type(exc).__name__
                still.append(path)
            else:
                errors[path] = None
        if len(still) == len(pending):
            break
        pending = still
    return errors


CHILD_TIMEOUT_S = 120.0
_MARK = "torchsmoke-cuda-libs: "


def _child_main() -> None:
    """In the child: torch first (it loads its CUDA libraries, as any torch program does), then
    each library of the JSON list on stdin; the errors as JSON on stdout."""
    import json

    importlib.import_module("torch")
    paths = [Path(p) for p in json.load(sys.stdin)]
    print(_MARK + json.dumps({str(p): e for p, e in load_all(paths).items()}), flush=True)


def load_in_child(paths: list[Path], timeout_s: float = CHILD_TIMEOUT_S) -> dict[Path, str | None]:
    """`load_all` in a fresh interpreter: the suite's process keeps only what torch loads, and a
    library whose initialiser crashes fails this check instead of the suite."""
    import json

    root = Path(__file__).resolve().parents[2]  # the folder torchsmoke is in
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r}); "
        "from torchsmoke.checks.cuda_libs import _child_main; _child_main()"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps([str(p) for p in paths]),
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise CheckFailed(
            f"loading the CUDA libraries did not finish in {timeout_s:.0f} s"
        ) from None
    if done.returncode != 0:
        how = (
            f"crashed ({signal.Signals(-done.returncode).name})"
            if done.returncode < 0 and -done.returncode in signal.valid_signals()
            else f"exited {done.returncode}"
        )
        last = done.stderr.strip().splitlines()[-1:] or [""]
        raise CheckFailed(f"loading the CUDA libraries in a fresh interpreter {how}: {last[0]}")
    # the libraries may print too (at load or at exit): the answer is the marked line
    answer = next((ln for ln in done.stdout.splitlines()[::-1] if ln.startswith(_MARK)), None)
    if answer is None:
        raise CheckFailed("loading the CUDA libraries in a fresh interpreter gave no answer")
    return {Path(p): e for p, e in json.loads(answer[len(_MARK) :]).items()}


def optional_reason(name: str, error: str, have_driver: bool) -> str | None:
    """Why a library that did not load is not a failure, or None when it is one."""
    if not have_driver and _NEEDS_DRIVER.search(error):
        return f"needs the NVIDIA driver's {DRIVER}, which a container gets with its GPUs"
    for pattern, why in OPTIONAL:
        if pattern.match(name) and "cannot open shared object file" in error:
            return why
    return None


def cudnn_triple(version: int) -> tuple[int, int, int]:
    """cudnnGetVersion's number: 91900 -> (9, 19, 0) (cuDNN 9), 8907 -> (8, 9, 7) (cuDNN 8)."""
    if version >= 90000:
        return version // 10000, version // 100 % 100, version % 100
    return version // 1000, version // 100 % 10, version % 100


def release(version: str | Iterable[int], parts: int = 3) -> tuple[int, ...]:
    """The first `parts` numbers of "9.19.0.56" or (2, 28, 9)."""
    if isinstance(version, str):
        numbers = re.match(r"\d+(\.\d+)*", version)
        return tuple(int(p) for p in numbers.group().split("."))[:parts] if numbers else ()
    return tuple(version)[:parts]


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def version_mismatches(
    cudnn_library: int | None,
    cudnn_torch: int | None,
    cudnn_wheels: Mapping[str, str],
    nccl_torch: Iterable[int] | None,
    nccl_wheels: Mapping[str, str],
) -> list[str]:
    """One line per pair of versions that should agree and do not."""
    lines = []
    library = cudnn_triple(cudnn_library) if cudnn_library else None
    if library and cudnn_torch and library != cudnn_triple(cudnn_torch):
        lines.append(
            f"cuDNN: the library reports {_dotted(library)} (cudnnGetVersion) but torch "
            f"reports {_dotted(cudnn_triple(cudnn_torch))} (torch.backends.cudnn.version())"
        )
    reported = library or (cudnn_triple(cudnn_torch) if cudnn_torch else None)
    for wheel, version in sorted(cudnn_wheels.items()):
        if reported and release(version) != reported:
            lines.append(
                f"cuDNN: the wheel {wheel} is {version} but the library loaded reports "
                f"{_dotted(reported)}"
            )
    nccl = release(nccl_torch) if nccl_torch else None
    for wheel, version in sorted(nccl_wheels.items()):
        if nccl and release(version) != nccl:
            lines.append(
                f"NCCL: the wheel {wheel} is {version} but torch.cuda.nccl.version() is "
                f"{_dotted(nccl)}"
            )
    return lines


def wheels(name: str) -> dict[str, str]:
    """Installed distributions `nvidia-<name>` or `nvidia-<name>-cuNN`: name -> version."""
    pattern = re.compile(rf"nvidia[-_.]{name}([-_.]cu\d+)?", re.I)
    return {
        dist.metadata["Name"]: dist.version
        for dist in metadata.distributions()
        if pattern.fullmatch(dist.metadata["Name"] or "")
    }


def cudnn_library_version(libraries: Iterable[Path], load: Loader = ctypes.CDLL) -> int | None:
    """cudnnGetVersion() of the first libcudnn.so.* that loads; None without one."""
    for path in libraries:
        if not _CUDNN.search(path.name):
            continue
        try:
            lib: Any = load(str(path))
            get = lib.cudnnGetVersion
        except (OSError, AttributeError):
            continue
        get.restype = ctypes.c_size_t
        return int(get())
    return None


def _torch_cudnn() -> int | None:
    try:
        return torch.backends.cudnn.version()  # type: ignore[no-untyped-call,no-any-return]
    except Exception:
        return None


def _torch_nccl() -> tuple[int, ...] | None:
    try:
        version = torch.cuda.nccl.version()  # type: ignore[no-untyped-call]
    except Exception:
        return None
    return tuple(version) if isinstance(version, tuple) else None


def _cudnn_built_against() -> str | None:
    """The cuDNN torch was compiled with ("9.24.0"); None when torch does not say."""
    try:
        return _dotted(tuple(torch._C._cudnn.getCompileVersion()))
    except Exception:
        return None


def _driver_loads() -> bool:
    try:
        ctypes.CDLL(DRIVER)
    except OSError:
        return False
    return True


def site_dirs() -> list[Path]:
    """sys.path's folders, and the one torch is installed in."""
    dirs = [Path(p) for p in sys.path if p] + [Path(torch.__file__).parents[1]]
    return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))


def torch_lib() -> Path:
    """torch's own folder of shared libraries."""
    return Path(torch.__file__).parent / "lib"


@check("cuda_libs")
def cuda_libs(ctx: Context) -> Outcome:  # noqa: ARG001  # the same on every device
    if not torch.version.cuda:
        raise CheckSkipped(
            f"torch {torch.__version__} is not a CUDA build (torch.version.cuda is None): "
            "no CUDA libraries to load"
        )
    start = time.perf_counter()
    libraries = find_libraries(site_dirs(), torch_lib())
    errors = load_in_child(libraries)
    have_driver = _driver_loads()
    optional: dict[str, str] = {}
    failed: dict[str, str] = {}
    for path, error in errors.items():
        if error is None:
            continue
        why = optional_reason(path.name, error, have_driver)
        if why:
            optional[path.name] = f"{why} ({error})"
        else:
            failed[path.name] = error
    ms = round((time.perf_counter() - start) * 1000, 1)

    library, torch_cudnn, cudnn_wheels = (
        cudnn_library_version(libraries),
        _torch_cudnn(),
        wheels("cudnn"),
    )
    torch_nccl, nccl_wheels = _torch_nccl(), wheels("nccl")
    cudnn = {
        "library": library,
        "torch": torch_cudnn,
        "built_against": _cudnn_built_against(),
        "wheels": cudnn_wheels,
    }
    nccl = {"torch": torch_nccl, "wheels": nccl_wheels}
    details: dict[str, Any] = {
        "libraries": len(libraries),
        "loaded": sum(error is None for error in errors.values()),
        "optional": optional,
        "failed": failed,
        "driver": have_driver,
        "cudnn": cudnn,
        "nccl": nccl,
        "ms": ms,
    }
    problems = [f"{name} does not load: {error}" for name, error in failed.items()]
    problems += version_mismatches(library, torch_cudnn, cudnn_wheels, torch_nccl, nccl_wheels)
    if problems:
        raise CheckFailed("; ".join(problems), **details)
    if not libraries:
        raise CheckFailed(
            f"torch {torch.__version__} is a CUDA {torch.version.cuda} build but no CUDA "
            "library was found in site-packages/nvidia or torch/lib",
            **details,
        )
    return passed(details)
