"""`cuda`: GPU properties, matmul and cuDNN against the CPU, memory; why there is no GPU."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from torchbuild import versions
from torchsmoke.core import CheckFailed, CheckSkipped, Context, Outcome, check, passed, require

PROBE_BYTES = 64 * 2**20


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

    # Compare in full fp32: TF32 would need loose tolerances (the runner restores the switches).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = torch.device("cuda", 0)
    details: dict[str, object] = {
        "devices": [
            {
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "memory_bytes": int(p.total_memory),
                "multiprocessors": p.multi_processor_count,
            }
            for p in map(torch.cuda.get_device_properties, range(torch.cuda.device_count()))
        ]
    }
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
    return passed(details)
