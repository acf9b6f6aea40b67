"""`env`: the environment report (torchsmoke.envinfo); its headline figures are the details,
the GPU architectures torch has kernels for among them (readable without a GPU)."""

from __future__ import annotations

from torchsmoke.core import Context, Outcome, check, passed


@check("env")
def env(ctx: Context) -> Outcome:
    report = ctx.env
    return passed(
        {
            "python": report.python.version,
            "torch": report.torch.version,
            "variant": report.torch.variant,
            "cuda": report.torch.cuda,
            "arch_list": report.torch.arch_list,
            "gpus": len(report.gpus),
            "shm_bytes": report.shm_bytes,
        }
    )
