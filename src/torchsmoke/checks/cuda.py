"""`cuda`: GPU properties, matmul and cuDNN against the CPU, memory; why there is no GPU.

Before any kernel runs it compares each GPU's compute capability with the architectures torch
has kernels for (torchbuild.archs), so that a GPU the build cannot run fails with a line naming
the missing architecture instead of torch's "no kernel image is available". A CUDA error raised
by the check's own work becomes a failure carrying CUDA's message; and a device-side assert,
provoked on purpose in a child process (it leaves the process's CUDA context unusable), must
come back as an error, not a hang or a crash.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from torchbuild import archs, versions
from torchsmoke.core import (
    CheckFailed,
    CheckSkipped,
    Context,
    Outcome,
    check,
    error_summary,
    passed,
    require,
)

PROBE_BYTES = 64 * 2**20
ASSERT_TIMEOUT_S = 120.0
_CAUGHT = "CAUGHT "
# An index out of range inside a kernel: a device-side assert on a GPU, reported at the next
# synchronisation (an IndexError straight away on the CPU, which the tests use).
ASSERT_PROBE = f"""
import sys
import torch
device = sys.argv[1]
values = torch.zeros(4, device=device)
index = torch.tensor([10], device=device)
try:
    values[index].sum().item()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
except Exception as exc:
    print({_CAUGHT!r} + type(exc).__name__ + ": " + " ".join(str(exc).split()), flush=True)
    sys.exit(0)
print("no error", flush=True)
sys.exit(3)
"""


def _driver_cause(cuda: str | None, driver: str | None) -> str | None:
    """The driver hint, or None when the driver is known to be new enough."""
    need = versions.min_driver(cuda)
    if need and driver and versions.at_least(driver, need):
        return None
    build = f"CUDA {cuda} build" if cuda else "CUDA build"
    text = f"the host NVIDIA driver is too old for this {build}"
    if need:
        text += f" (needs >= {need}"
        text += f", found {driver})" if driver else ")"
    return text


def cuda_init_error() -> str | None:
    """Why CUDA did not initialise, in torch's words (a CUDA build only)."""
    if not torch.version.cuda:
        return None
    try:
        torch.cuda.init()  # type: ignore[no-untyped-call]  # unannotated in torch
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return None


def no_gpu_causes(ctx: Context) -> list[str]:
    """The usual reasons torch.cuda.is_available() is False, most likely first."""
    env = ctx.env
    torch_info = env.torch
    causes: list[str] = []
    if not torch_info.cuda and not torch_info.hip:
        causes.append(
            f"torch is the CPU build ({torch_info.version}): install the CUDA build "
            "from the matching PyTorch wheel index"
        )
    no_devices = not any(Path("/dev").glob("nvidia[0-9]*"))
    causes.append(
        "the container was started without --gpus all"
        + (" (there are no /dev/nvidia* devices)" if no_devices else "")
    )
    driver = _driver_cause(torch_info.cuda, env.driver_version)
    if driver:
        causes.append(driver)
    causes.append("the NVIDIA container toolkit is missing on the host")
    init_error = cuda_init_error()
    if init_error:
        causes.append(f"torch says: {init_error}")
    return causes


def arch_flags() -> str | None:
    """torch's kernel architectures, "sm_75 sm_80 ..." (no GPU needed); None when unreadable."""
    getter = getattr(torch._C, "_cuda_getArchFlags", None)
    try:
        flags = getter() if getter is not None else None
    except Exception:
        return None
    return str(flags) if flags else None


def misfits(flags: str | None, devices: list[tuple[str, tuple[int, int]]]) -> list[str]:
    """One line per GPU (name, capability) the build has no kernels for; [] when all fit or
    the arch list cannot be read (a ROCm build, say: then torch's own errors speak)."""
    if not flags:
        return []
    lines = (
        archs.misfit(flags, capability, f"GPU {index} {name}")
        for index, (name, capability) in enumerate(devices)
    )
    return [line for line in lines if line]


@dataclass(frozen=True)
class AssertProbe:
    """What the child process that provoked a device-side assert gave."""

    ok: bool  # the error came back as an exception
    message: str


def read_assert_probe(
    returncode: int | None, stdout: str, stderr: str, timeout_s: float
) -> AssertProbe:
    """The child's verdict: its caught error, or why it hung (returncode None) or crashed."""
    for line in stdout.splitlines():
        if line.startswith(_CAUGHT):
            return AssertProbe(True, line[len(_CAUGHT) :].strip())
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    tail = f": {last}" if last else ""
    if returncode is None:
        return AssertProbe(
            False, f"a device-side assert hung the process (no answer in {timeout_s:.0f} s)"
        )
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return AssertProbe(False, f"a device-side assert crashed the process ({name}){tail}")
    if returncode == 3:
        return AssertProbe(False, "an index out of range in a kernel raised no error")
    return AssertProbe(False, f"the device-side assert probe exited {returncode}{tail}")


def device_assert_probe(device: str = "cuda", timeout_s: float = ASSERT_TIMEOUT_S) -> AssertProbe:
    """Provoke an index out of range in a kernel on `device`, in a fresh interpreter."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", ASSERT_PROBE, device],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return read_assert_probe(None, "", "", timeout_s)
    return read_assert_probe(done.returncode, done.stdout, done.stderr, timeout_s)


@contextlib.contextmanager
def cuda_errors(what: str) -> Iterator[None]:
    """A CUDA error (torch raises it as a RuntimeError, often at a later synchronisation)
    becomes a failure with CUDA's message."""
    try:
        yield
    except (CheckFailed, CheckSkipped):
        raise
    except RuntimeError as exc:
        text = str(exc)
        if "CUDA" not in text and "cuda" not in text:
            raise
        raise CheckFailed(
            f"CUDA error during {what}: {error_summary(exc)} (CUDA reports kernel errors late: "
            "CUDA_LAUNCH_BLOCKING=1 pins one to the call that caused it)"
        ) from exc


def _compare(what: str, got: torch.Tensor, ref: torch.Tensor, atol: float, rtol: float) -> float:
    """The max error of a GPU result against a float64 CPU reference; a failure beyond tolerance."""
    got, ref = got.double().cpu(), ref.double()
    err = (got - ref).abs().max().item()
    ok = torch.allclose(got, ref, atol=atol, rtol=rtol)
    require(ok, f"{what} on the GPU differs from the CPU reference (max error {err:.3g})")
    return err


@check("cuda")
def cuda(ctx: Context) -> Outcome:
    if not ctx.has_cuda:
        causes = no_gpu_causes(ctx)
        if ctx.gpu_required:
            flag = "--require-gpu" if ctx.options.require_gpu else "--device cuda"
            raise CheckFailed(
                f"no GPU, but {flag} was given: torch.cuda.is_available() is False; "
                f"likely causes: {'; '.join(causes)}",
                causes=causes,
            )
        build = "torch is the CPU build" if ctx.env.torch.variant == "cpu" else "GPU not visible"
        raise CheckSkipped(f"no GPU (torch.cuda.is_available() is False; {build})", causes=causes)

    props = list(map(torch.cuda.get_device_properties, range(torch.cuda.device_count())))
    flags = arch_flags()
    details: dict[str, object] = {
        "devices": [
            {
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "memory_bytes": int(p.total_memory),
                "multiprocessors": p.multi_processor_count,
            }
            for p in props
        ],
        "arch_list": flags.split() if flags else None,
    }
    unfit = misfits(flags, [(p.name, (p.major, p.minor)) for p in props])
    if unfit:
        raise CheckFailed("; ".join(unfit), **details)
    with cuda_errors("the GPU checks"):
        _gpu_work(ctx, details)
    if ctx.quick:  # a fresh interpreter that initialises CUDA takes seconds
        details["device_assert"] = "not run (--quick)"
        return passed(details)
    probe = device_assert_probe("cuda")
    details["device_assert"] = probe.message
    require(probe.ok, probe.message, **details)
    return passed(details)


def _gpu_work(ctx: Context, details: dict[str, object]) -> None:
    """matmul and convolution against the CPU, and a 64 MiB allocation, into `details`."""
    # Compare in full fp32: TF32 would need loose tolerances (the runner restores the switches).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = torch.device("cuda", 0)
    gen = ctx.generator()
    a, b = torch.randn(256, 256, generator=gen), torch.randn(256, 256, generator=gen)
    details["matmul_max_error"] = _compare(
        "matmul", a.to(gpu) @ b.to(gpu), a.double() @ b.double(), atol=1e-3, rtol=1e-4
    )

    # torch.backends.cudnn leaves is_available and version unannotated
    require(torch.backends.cudnn.is_available(), "cuDNN is not available to torch")  # type: ignore[no-untyped-call]
    x, w = torch.randn(4, 3, 32, 32, generator=gen), torch.randn(8, 3, 3, 3, generator=gen)
    details["conv_max_error"] = _compare(
        "cuDNN convolution",
        F.conv2d(x.to(gpu), w.to(gpu), padding=1),
        F.conv2d(x.double(), w.double(), padding=1),
        atol=1e-3,
        rtol=1e-4,
    )
    details["cudnn"] = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]

    torch.cuda.synchronize(gpu)
    baseline = torch.cuda.memory_allocated(gpu)
    block = torch.ones(PROBE_BYTES, dtype=torch.uint8, device=gpu)
    torch.cuda.synchronize(gpu)
    grown = torch.cuda.memory_allocated(gpu) - baseline
    require(block.sum().item() == PROBE_BYTES, "a 64 MiB GPU buffer did not hold its values")
    del block
    torch.cuda.synchronize(gpu)
    released = torch.cuda.memory_allocated(gpu)
    torch.cuda.empty_cache()
    details.update(memory_baseline=baseline, memory_grown=grown, memory_after_release=released)
    require(grown >= PROBE_BYTES, f"allocating 64 MiB grew memory_allocated by only {grown}")
    require(
        released == baseline,
        f"memory_allocated is {released} after release, not back to {baseline}",
    )
